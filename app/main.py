"""`panel serve app/`: one page per browser session; everything is built by :class:`app.page.App`."""

import holoviews as hv
import panel as pn

from .page import App

pn.extension()  # the upload widget's scripts load when the data panel opens (UploadScripts)
if hv.Store.current_backend != "bokeh":  # process-wide (HoloViews' backend), not per session: once
    hv.extension("bokeh")

App().servable(title="RSTN Studio")
