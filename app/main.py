"""`panel serve app/`: one page per browser session; everything is built by :class:`app.page.App`."""

import panel as pn

from .page import App

pn.extension()  # the upload widget's scripts load when the data panel opens (UploadScripts)

App().servable(title="RSTN Studio")
