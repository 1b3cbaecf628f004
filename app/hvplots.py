"""HoloViews helpers shared by the side panels (saliency, probabilities, comparison): images in the
display frame of :mod:`app.display`, NaN-background overlays and crop boxes. The main slice viewer
draws in the browser instead (:mod:`app.viewer`)."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - the options below need the Bokeh backend loaded
import numpy as np

from . import display

ERROR_CMAP = [display.ERROR_COLORS[display.TP], display.ERROR_COLORS[display.FP], display.ERROR_COLORS[display.FN]]
TRUTH_COLOR = "#ffd700"
PRED_COLOR = "#e31a1c"
CLEAR = {"NaN": "transparent", "min": "transparent"}


def frame_size(geom: display.DisplayGeometry, largest: int) -> dict:
    """Frame width and height (px) with the physical aspect of the view; the larger side is ``largest``."""
    aspect = geom.aspect
    if aspect >= 1:
        return {"frame_width": largest, "frame_height": max(40, int(round(largest / aspect)))}
    return {"frame_height": largest, "frame_width": max(40, int(round(largest * aspect)))}


def image(array: np.ndarray, geom: display.DisplayGeometry, vdim: str = "value", label: str = "") -> hv.Image:
    return hv.Image(array, bounds=geom.bounds, kdims=["x_mm", "y_mm"], vdims=[vdim], label=label)


def overlay_layer(layer: np.ndarray, geom: display.DisplayGeometry, vdim: str) -> hv.Image:
    """A NaN-background overlay as 0-background (no all-NaN warnings); 0 is below clim -> transparent."""
    return image(np.nan_to_num(layer, nan=0.0), geom, vdim).opts(clipping_colors=CLEAR)


def rectangles(rows: list[tuple], width: int = 2) -> hv.Rectangles:
    """Crop boxes (x0, y0, x1, y1, round, colour) with their own colours."""
    rects = hv.Rectangles(rows or [], vdims=["round", "color"])
    return rects.opts(fill_alpha=0, line_color="color", line_width=width, tools=["hover"])
