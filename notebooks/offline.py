"""What the notebooks need for exports that open offline (Panel only, so not in ``rstn_core``).

``from notebooks.offline import embedded`` (the repository root is on ``sys.path``: papermill runs
from it, ``make lab`` puts it on ``PYTHONPATH``).
"""

from __future__ import annotations

from typing import Any


def embedded(obj: Any, max_states: int = 1000, max_opts: int = 200, **panel_kwargs: Any):
    """``pn.panel(obj).embed(...)`` with inline stylesheets: every widget state is precomputed into the
    output, so the widgets keep working in the exported HTML without a kernel or a network.

    Panel's own ``embed()`` points the stylesheets at cdn.holoviz.org even after
    ``pn.extension(inline=True)``; here they are inlined as in Panel's regular notebook display.
    """
    import panel as pn
    from bokeh.document import Document
    from bokeh.models import UIElement
    from panel.io.embed import embed_state
    from panel.io.notebook import Mimebundle, patch_inline_stylesheets, render_model
    from pyviz_comms import Comm

    component = pn.panel(obj, **panel_kwargs)
    doc = Document()
    with pn.config.set(embed=True):
        model = component.get_root(doc, Comm())
        embed_state(component, model, doc, max_states=max_states, max_opts=max_opts, progress=False)
    for element in model.select({"type": UIElement}):
        patch_inline_stylesheets(element)
    return Mimebundle(render_model(model))
