"""`panel serve app/`: one page per browser session, composed from the state and the views.

Every session gets its own :class:`SessionState`; engines and the demo case are shared through
:mod:`app.backend`'s caches.
"""

import holoviews as hv
import panel as pn

from .state import SessionState
from .views import ComparePanel, ConvergencePanel, ProbabilityPanel, SaliencyPanel, Sidebar, SliceViewer

pn.extension("filedropper")
hv.extension("bokeh")

state = SessionState(name="session")
state.param.trigger("load_demo")
pn.state.onload(lambda: state.param.trigger("coarse"))  # the demo opens with round 0 on screen

alert = pn.pane.Alert(pn.bind(lambda e: e or "", state.param.error), alert_type="danger",
                      visible=pn.bind(bool, state.param.error), css_classes=["error-alert"])
header = pn.Column(
    pn.pane.HTML("<h2 style='margin:0'>RSTN Studio</h2>"),
    pn.pane.HTML(pn.bind(lambda m: f"<b>Model:</b> <span data-testid='model-info'>{m}</span>", state.param.model_info)),
    pn.pane.HTML(pn.bind(lambda c: f"<b>Case:</b> <span data-testid='case-info'>{c}</span>", state.param.case_info)),
    pn.pane.HTML(pn.bind(lambda s: f"<span data-testid='status'>{s}</span>", state.param.status)),
    alert,
)
tabs = pn.Tabs(
    ("Saliency", SaliencyPanel(state=state)),
    ("Probabilities", ProbabilityPanel(state=state)),
    ("Compare RSTN vs C2F", ComparePanel(state=state)),
    dynamic=True,
)
page = pn.Row(
    Sidebar(state=state),
    pn.Column(header, pn.Row(SliceViewer(state=state), ConvergencePanel(state=state)), tabs),
)
page.servable(title="RSTN Studio")
