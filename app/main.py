"""`panel serve app/`: one page per browser session; everything is built by :class:`app.page.App`."""

import holoviews as hv
import panel as pn

from .page import App

pn.extension("filedropper")
hv.extension("bokeh")

App().servable(title="RSTN Studio")
