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
    pn.pane.HTML(pn.bind(lambda v, i, n, r, rounds: f"<b>Showing:</b> <span data-testid='nav-info'>{v} slice {i}"
                         f"/{n - 1} · round {rounds[r].round if rounds else '–'}</span>", state.param.view,
                         state.param.slice_index, state.param.num_slices, state.param.round_index, state.param.rounds)),
    pn.pane.HTML(pn.bind(lambda s: f"<span data-testid='status'>{s}</span>", state.param.status)),
    alert,
)
sidebar = Sidebar(state=state)
tabs = pn.Tabs(
    ("Saliency", SaliencyPanel(state=state)),
    ("Probabilities", ProbabilityPanel(state=state)),
    ("Compare RSTN vs C2F", ComparePanel(state=state)),
    dynamic=True,
)
page = pn.Row(
    sidebar,
    pn.Column(
        header,
        # rendered with the page (not in a dynamic tab): the file picker's styles are then served locally
        pn.Card(sidebar.data_panel(), title="Load another CT: upload or server data folder", collapsed=True,
                css_classes=["data-card"], sizing_mode="stretch_width"),
        pn.Row(SliceViewer(state=state), ConvergencePanel(state=state)),
        tabs,
    ),
)
page.servable(title="RSTN Studio")
