"""The tabs and the chart beside the viewer: saliency, probabilities, convergence, comparison.

Read-only ``pn.viewable.Viewer``s over a :class:`SessionState`, built from its parameters; the
numbers come from :mod:`rstn_core.inference.summary` (the same model the HTML report uses).
"""

from __future__ import annotations

import functools
import html
from typing import Any

import numpy as np
import panel as pn
import param

from rstn_core.inference.summary import curve_points

from . import display
from .doc_push import DocPush
from .dsc_chart import dsc_chart_svg, dsc_comparison_svg
from .image_grid import ImageGrid, RowSpec
from .lazy import ShownPanel
from .state import SessionState
from .tables import rounds_table_html

SMALL = 190
COMPARE = 300  # px, the larger side of each method's image
PREDICTION_CODE = len(display.ERROR_CMAP) + 1  # overlay code of a prediction shown without a truth
COMPARE_LEGEND = display.legend_html(
    [*zip(display.ERROR_CMAP, ("TP", "FP", "FN"), strict=True), (display.PRED_COLOR, "prediction (no truth)")],
    "· boxes: each round's crop (dark = early)")
DIVERGING = "RdBu_r"
SALIENCY_CAPTION = (
    "<b>What the fine net sees</b> (the paper's Figure 5). The fine net reads three neighbouring slices "
    "(channels j−1, j, j+1). Before it does, each channel X is multiplied by weights g(P) computed from the "
    "previous round's probability P: white = 1 = unchanged, red &gt; 1 = brightened, blue &lt; 1 = dimmed. "
    "The difference X⊙g(P) − X shows where the previous round's guess changed the input.")


def explanation_pane(state: SessionState) -> pn.pane.Alert:
    return pn.pane.Alert(pn.bind(lambda e: e, state.param.explanation), alert_type="warning",
                         visible=pn.bind(bool, state.param.explanation), css_classes=["empty-explanation"])


@functools.cache
def palette(name: str, n: int = 256) -> tuple[str, ...]:
    """A matplotlib colour map as ``n`` hex colours (the report draws with the same maps)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    cmap = colormaps[name]
    return tuple(to_hex(cmap(i / (n - 1))) for i in range(n))


class GridPanel(ShownPanel):
    """A tab of small images (:class:`app.image_grid.ImageGrid`) that are updated in place, or a note when
    there is nothing to show. Subclasses say what to show (:meth:`_what`), how the grid looks (:meth:`_rows`)
    and how the arrays go in (:meth:`_apply`); the grid is built with the first images. Changes reach the
    browser batched, on the document's own tick (:class:`app.doc_push.DocPush`)."""

    state = param.ClassSelector(class_=SessionState)
    css_class = "image-grid"
    size = SMALL  # px, the larger side of each image

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.note = pn.pane.HTML("", margin=(0, 10))
        self.plots = pn.Column(margin=0, visible=False)
        self.grid: ImageGrid | None = None
        self._grid_key: Any = None
        self._pending: Any = None
        self._push = DocPush(self._flush)

    def _what(self) -> tuple[str, Any]:
        """(a note, None) when there is nothing to show, else ("", what :meth:`_apply` draws)."""
        raise NotImplementedError

    def _rows(self, payload: Any) -> tuple[Any, list[RowSpec]]:
        """(a key that changes when the grid's shape must, the rows)."""
        raise NotImplementedError

    def _apply(self, grid: ImageGrid, payload: Any) -> None:
        raise NotImplementedError

    def refresh(self) -> None:
        if not self.shown:
            return  # brought up to date when shown again
        message, payload = self._what()
        if message:
            self.note.object = f"<p>{message}</p>"
            self.note.visible, self.plots.visible = True, False
            return
        if payload is None:
            return  # what is on screen is still right
        key, rows = self._rows(payload)
        if self.grid is None or key != self._grid_key:  # new models: filled before they join the page
            self.grid, self._grid_key, self._pending = ImageGrid(rows, self.size, self.css_class), key, None
            self._apply(self.grid, payload)
            self.plots.objects = [pn.pane.Bokeh(self.grid.model)]
        else:
            self._pending = payload
            self._push.mark("grid")
        self.note.visible, self.plots.visible = False, True

    def _flush(self, dirty: set[str]) -> None:
        payload, self._pending = self._pending, None
        if payload is not None and self.grid is not None:
            self._apply(self.grid, payload)


class SaliencyPanel(GridPanel):
    """The three weight channels g(P) on a fixed scale, and the transformed input or its difference; its
    controls are built the first time there is a saliency to show."""

    css_class = "saliency-plot"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._controls = pn.Column(margin=0)
        self.caption = pn.pane.HTML("", margin=(0, 10), visible=False)
        self.refresh()

    def _add_controls(self) -> None:
        if self._controls.objects:
            return
        d = self.state.display
        self._controls.objects = [pn.Row(
            pn.widgets.RadioButtonGroup.from_param(d.param.saliency_mode, label="Lower row"),
            pn.widgets.FloatInput.from_param(d.param.saliency_span, label="g(P) scale: 1 ±", width=130),
            pn.widgets.FloatInput.from_param(d.param.difference_span, label="difference scale: ±", width=130))]

    @param.depends("state.case", "state.view", "state.slice_index", "state.round_index", "state.rounds",
                   "state.display.saliency_span", "state.display.difference_span", "state.display.saliency_mode",
                   "shown", watch=True)
    def refresh(self) -> None:
        super().refresh()
        self.caption.visible = self.plots.visible

    def _what(self) -> tuple[str, Any]:
        s = self.state
        if s.case is None or not s.rounds:
            return "Run the coarse stage and one step to see the saliency transformation.", None
        if len(s.rounds) == 1 and s.rounds[0].stopped:
            return (f"No fine round ran: the run stopped after the coarse stage ({s.rounds[0].stopped}). "
                    f"{html.escape(s.explanation)}"), None
        if s.round_index == 0:
            return ("Round 0 is the coarse stage: the coarse nets saw the raw image. "
                    "Pick a round ≥ 1 (the <b>Round shown</b> slider) to see what the fine net saw."), None
        sal = s.saliency()
        if sal is None:
            return "No saliency for this view and round.", None
        self._add_controls()
        d = s.display
        self.caption.object = (
            f"<div data-testid='saliency-caption'>{SALIENCY_CAPTION}<br>Round {s.rounds[s.round_index].round}: "
            f"weights from the round {s.rounds[s.round_index - 1].round} probabilities, window centred on slice "
            f"{sal.centre}; fixed colour scales g(P) {1 - d.saliency_span:.3f}..{1 + d.saliency_span:.3f}, "
            f"difference ±{d.difference_span:g} (this window's g(P) spans {float(np.min(sal.weights)):.3f}.."
            f"{float(np.max(sal.weights)):.3f}); yellow = crop box.</div>")
        return "", (sal, display.geometry(s.case.image.shape, s.case.image.spacing, s.view), d.saliency_mode,
                    d.saliency_span, d.difference_span)

    def _rows(self, payload: Any) -> tuple[Any, list[RowSpec]]:
        diverging = palette(DIVERGING)
        return "saliency", [RowSpec(3, diverging, 0.9, 1.1, "weight", "weight"),
                            RowSpec(3, diverging, -0.05, 0.05, "change", "value", boxes=True)]

    def _apply(self, grid: ImageGrid, payload: Any) -> None:
        sal, geom, mode, span, dspan = payload
        names = ("slice j−1", "slice j", "slice j+1")
        grid.set_frame(geom)
        grid.set_row(0, [display.to_display(w) for w in sal.weights], [f"g(P), {n}" for n in names], geom,
                     low=1.0 - span, high=1.0 + span)
        if mode.startswith("difference"):
            arrays = [display.to_display(t - x) for t, x in zip(sal.transformed, sal.image, strict=True)]
            grid.set_row(1, arrays, [f"X⊙g(P) − X, {n}" for n in names], geom, low=-dspan, high=dspan,
                         palette=palette(DIVERGING), bar="change")
        else:
            grid.set_row(1, [display.to_display(t) for t in sal.transformed], [f"X⊙g(P), {n}" for n in names],
                         geom, low=0.0, high=1.0, palette=palette("gray"), bar="input")
        grid.set_boxes(1, [] if sal.box is None else [display.box_to_display(sal.box, geom)])

    def __panel__(self):
        return pn.Column(self._controls, self.note, self.caption, self.plots, css_classes=["saliency-panel"],
                         name="saliency-panel")


class ProbabilityPanel(GridPanel):
    """Per-view probabilities and the fused probability of the current round on this slice."""

    css_class = "probability-plot"

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.refresh()

    @param.depends("state.case", "state.view", "state.slice_index", "state.round_index", "state.rounds", "shown",
                   watch=True)
    def refresh(self) -> None:
        super().refresh()

    def _what(self) -> tuple[str, Any]:
        s = self.state
        round_state = s.current_round
        if s.case is None or round_state is None:
            return "No round yet.", None
        arrays = [(f"P from {v.value} nets", p) for v, p in round_state.view_probs.items()]
        items = [(title, display.display_slice(np.asarray(prob, dtype=np.float32), s.view, s.slice_index))
                 for title, prob in [*arrays, ("fused P", round_state.fused_prob)]]
        return "", (items, display.geometry(s.case.image.shape, s.case.image.spacing, s.view))

    def _rows(self, payload: Any) -> tuple[Any, list[RowSpec]]:
        n = len(payload[0])
        return n, [RowSpec(n, palette("magma"), 0.0, 1.0, "P", "p")]

    def _apply(self, grid: ImageGrid, payload: Any) -> None:
        items, geom = payload
        grid.set_frame(geom)
        grid.set_row(0, [a for _, a in items], [t for t, _ in items], geom)

    def __panel__(self):
        return pn.Column(self.note, self.plots, css_classes=["probability-panel"])


class ConvergencePanel(pn.viewable.Viewer):
    """The chart of inter-round DSC (with the stop threshold) and DSC vs truth, and the numbers: one HTML
    pane (an inline SVG and a table) replaced per round, and the explanation of an empty result."""

    state = param.ClassSelector(class_=SessionState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.pane = pn.pane.HTML(self.html(), css_classes=["convergence-numbers"], margin=(0, 10), width=560)
        self.state.param.watch(self._update, ["rounds", "model"])

    def html(self) -> str:
        s = self.state
        points = curve_points(s.rounds)
        return (f"{dsc_chart_svg(s.rounds, s.stop_dsc(), points)}<div><span data-testid='dsc-points'>"
                f"{len(points['inter'])}</span> "
                f"inter-round DSC point(s)</div>{rounds_table_html(s.rounds)}")

    def _update(self, *events) -> None:
        self.pane.object = self.html()

    def __panel__(self):
        return pn.Column(explanation_pane(self.state), self.pane, css_classes=["convergence-panel"])


class ComparePanel(GridPanel):
    """RSTN next to the stage-wise baseline on the same case, at the slice where they differ most: the two
    images (CT, TP/FP/FN or the prediction, each round's crop box) updated in place, the curves of both
    (an inline SVG) and both tables; nothing is sent when only the slice on screen changes."""

    css_class = "compare-image"
    size = COMPARE

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.where = pn.pane.HTML("", margin=(0, 10))
        self.chart = pn.pane.HTML("", css_classes=["compare-chart"], margin=(0, 10))
        self.tables = pn.pane.HTML("", margin=(0, 10))
        self._drawn: tuple | None = None
        self.refresh()

    @param.depends("state.case", "state.view", "state.slice_index", "state.rounds", "state.compare_rounds",
                   "state.display.window", "state.display.level", "state.display.width", "shown", watch=True)
    def refresh(self) -> None:
        super().refresh()
        for pane in (self.where, self.chart, self.tables):
            pane.visible = self.plots.visible

    def _what(self) -> tuple[str, Any]:
        s = self.state
        if s.case is None or not s.rounds or not s.compare_rounds:
            self._drawn = None
            return "Press <b>Compare with baseline</b> to run both methods to convergence on this case.", None
        differs = s.difference_slice()
        index = s.slice_index if differs is None else differs
        key = (id(s.case), s.view, index, id(s.rounds[-1]), len(s.rounds), id(s.compare_rounds[-1]),
               len(s.compare_rounds), tuple(s.display.clim()))
        if key == self._drawn:  # e.g. a slice change while the tab shows the slice where the methods differ
            return "", None
        self._drawn = key
        where = (f"{s.view} slice {index}: where the two final masks differ most" if differs is not None
                 else f"{s.view} slice {index} (the two final masks agree on every slice)")
        self.where.object = f"<div data-testid='compare-where'>{where}</div>{COMPARE_LEGEND}"
        runs = ((s.model, s.rounds), (s.compare_model, s.compare_rounds))
        names = [s.choice(key).method.upper() for key, _ in runs]
        self.chart.object = dsc_comparison_svg(dict(zip(names, (r for _, r in runs), strict=True)), s.stop_dsc())
        self.tables.object = ("<div style='display:flex; gap:24px'>"
                              + "".join(rounds_table_html(rounds, test_id, s.choice_label(key))
                                        for (key, rounds), test_id in zip(runs, ("compare-main", "compare-baseline"),
                                                                          strict=True))
                              + "</div>")
        geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
        hu = display.display_slice(s.case.image.data, s.view, index)
        images = []
        for name, (_, rounds) in zip(names, runs, strict=True):
            last = rounds[-1]
            pred = display.display_slice(last.mask, s.view, index)
            codes = (display.error_layer(pred, display.display_slice(s.case.label, s.view, index))
                     if s.case.label is not None else display.mask_layer(pred) * PREDICTION_CODE)
            dsc = "" if last.dsc_vs_truth is None else f", DSC {last.dsc_vs_truth:.3f}"
            images.append((f"{name}: round {last.round}{dsc}", codes,
                           display.box_rows(rounds, s.view, index, geom)))
        return "", (geom, hu, images, tuple(s.display.clim()))

    def _rows(self, payload: Any) -> tuple[Any, list[RowSpec]]:
        return "compare", [RowSpec(2, palette("gray"), -135.0, 215.0, value="HU", boxes=True,
                                   overlay=(*display.ERROR_CMAP, display.PRED_COLOR))]

    def _apply(self, grid: ImageGrid, payload: Any) -> None:
        geom, hu, images, clim = payload
        grid.set_frame(geom)
        grid.set_row(0, [hu, hu], [title for title, _, _ in images], geom, low=clim[0], high=clim[1],
                     overlays=[codes for _, codes, _ in images])
        for i, (_, _, boxes) in enumerate(images):
            grid.set_boxes(0, boxes, index=i)

    def __panel__(self):
        return pn.Column(self.note, self.where, self.plots, self.chart, self.tables, css_classes=["compare-panel"])
