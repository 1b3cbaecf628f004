"""The main slice viewer: CT with window/level, truth and prediction overlays and the crop boxes.

The plot is rebuilt when the case or the view changes (the frame, the axis ranges and the
anatomical axis labels follow them); within one case and view the layers are ``hv.DynamicMap``s
fed by the state's slice and round parameters, so a slice change only re-sends the pixels.
Coordinates are millimetres of :mod:`app.display`'s frame (radiological convention).
"""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401 - the options below need the Bokeh backend loaded
import numpy as np
import panel as pn
import param

from . import display
from .state import SessionState

FRAME = 400  # px, the larger side of the main slice plot
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


def legend_html() -> str:
    return (
        "<div class='legend'>"
        f"<span style='color:{display.ERROR_COLORS[display.TP]}'>■ TP (found)</span> "
        f"<span style='color:{display.ERROR_COLORS[display.FP]}'>■ FP (extra)</span> "
        f"<span style='color:{display.ERROR_COLORS[display.FN]}'>■ FN (missed)</span> "
        f"<span style='color:{TRUTH_COLOR}'>■ truth</span> "
        f"<span style='color:{PRED_COLOR}'>■ prediction</span> · boxes: where each round zoomed in "
        "(round 1 is cut from round 0's mask; dark = early)</div>")


class SliceViewer(pn.viewable.Viewer):
    """CT slice with window/level, truth and prediction overlays (TP/FP/FN) and the crop boxes."""

    state = param.ClassSelector(class_=SessionState)

    def _geom(self) -> display.DisplayGeometry:
        case = self.state.case
        return display.geometry(case.image.shape, case.image.spacing, self.state.view)

    @param.depends("state.case", "state.view")
    def _plot(self):
        s, d = self.state, self.state.display
        if s.case is None:
            return pn.pane.Markdown("Loading the demo CT…", css_classes=["slice-placeholder"])
        geom = self._geom()
        xlabel, ylabel = display.axis_labels(s.view)
        left, bottom, right, top = geom.bounds
        # new streams per plot: a replaced plot's layers are not recomputed on later slice changes
        nav = hv.streams.Params(s, ["slice_index", "round_index", "rounds"])
        looks = hv.streams.Params(d, ["outline", "errors", "show_truth", "show_prediction", "show_boxes"])
        ct = hv.DynamicMap(self._ct, streams=[nav]).apply.opts(clim=d.clim)
        truth = hv.DynamicMap(self._truth, streams=[nav, looks]).apply.opts(alpha=d.param.opacity)
        pred = hv.DynamicMap(self._prediction, streams=[nav, looks]).apply.opts(alpha=d.param.opacity)
        boxes = hv.DynamicMap(self._boxes, streams=[nav, looks])
        overlay = (ct * truth * pred * boxes).opts(show_legend=False, xlim=(left, right), ylim=(bottom, top),
                                                   xlabel=xlabel, ylabel=ylabel, **frame_size(geom, FRAME))
        return pn.pane.HoloViews(overlay, css_classes=["slice-viewer"], name="slice-viewer", linked_axes=False)

    def _ct(self, slice_index, round_index, rounds) -> hv.Image:
        s = self.state
        geom = self._geom()
        hu = display.display_slice(s.case.image.data, s.view, slice_index)
        n = display.num_slices(s.case.image.shape, s.view)
        title = f"{s.case.case_id} · {s.view} slice {slice_index}/{n - 1}"
        if rounds:
            title += f" · round {rounds[min(round_index, len(rounds) - 1)].round}"
        xlabel, ylabel = display.axis_labels(s.view)
        return image(hu, geom, "HU").opts(cmap="gray", tools=["hover"], title=title, colorbar=False,
                                          toolbar="above", xlabel=xlabel, ylabel=ylabel, **frame_size(geom, FRAME))

    def _truth(self, slice_index, round_index, rounds, outline, errors, show_truth, show_prediction,
               show_boxes) -> hv.Image:
        s = self.state
        geom = self._geom()
        coloured_by_errors = errors and bool(rounds) and show_prediction
        mask = display.display_slice(s.case.label, s.view, slice_index) if s.case.label is not None else None
        if mask is None or not show_truth or coloured_by_errors:
            mask = np.zeros((geom.view_hw[1], geom.view_hw[0]), dtype=bool)
        layer = display.mask_layer(display.contour(mask) if outline else mask)
        return overlay_layer(layer, geom, "truth").opts(cmap=[TRUTH_COLOR], clim=(0.5, 1.0))

    def _prediction(self, slice_index, round_index, rounds, outline, errors, show_truth, show_prediction,
                    show_boxes) -> hv.Image:
        s = self.state
        geom = self._geom()
        if not rounds or not show_prediction:
            empty = np.full((geom.view_hw[1], geom.view_hw[0]), np.nan, dtype=np.float32)
            return overlay_layer(empty, geom, "error").opts(cmap=ERROR_CMAP, clim=(0.5, 3.5))
        state = rounds[min(round_index, len(rounds) - 1)]
        pred = display.display_slice(state.mask, s.view, slice_index)
        if errors and s.case.label is not None:
            truth = display.display_slice(s.case.label, s.view, slice_index)
            layer = display.error_layer(pred, truth, outline=outline)
            return overlay_layer(layer, geom, "error").opts(cmap=ERROR_CMAP, clim=(0.5, 3.5))
        layer = display.mask_layer(display.contour(pred) if outline else pred)
        return overlay_layer(layer, geom, "error").opts(cmap=[PRED_COLOR], clim=(0.5, 1.0))

    def _boxes(self, slice_index, round_index, rounds, outline, errors, show_truth, show_prediction,
               show_boxes) -> hv.Rectangles:
        rows = []
        if rounds and show_boxes:
            rows = display.box_rows(rounds, self.state.view, slice_index, self._geom(), round_index)
        return rectangles(rows)

    def __panel__(self):
        return pn.Column(self._plot, pn.pane.HTML(legend_html(), margin=(0, 10)), css_classes=["viewer-column"])
