"""The tabs and the chart beside the viewer: saliency, probabilities, convergence, comparison.

Read-only ``pn.viewable.Viewer``s over a :class:`SessionState`, built from its parameters; the
numbers come from :mod:`rstn_core.inference.summary` (the same model the HTML report uses).
"""

from __future__ import annotations

import html

import holoviews as hv
import numpy as np
import panel as pn
import param

from rstn_core.inference.summary import curve_points

from . import display
from .dsc_chart import dsc_chart_svg
from .hvplots import ERROR_CMAP, PRED_COLOR, frame_size, image, overlay_layer, rectangles
from .lazy import ShownPanel
from .state import SessionState
from .tables import rounds_table_html

SMALL = 190
DIVERGING = "RdBu_r"
SALIENCY_CAPTION = (
    "<b>What the fine net sees</b> (the paper's Figure 5). The fine net reads three neighbouring slices "
    "(channels j−1, j, j+1). Before it does, each channel X is multiplied by weights g(P) computed from the "
    "previous round's probability P: white = 1 = unchanged, red &gt; 1 = brightened, blue &lt; 1 = dimmed. "
    "The difference X⊙g(P) − X shows where the previous round's guess changed the input.")


def dsc_curves(series: dict, stop_dsc: float) -> hv.Overlay:
    """Inter-round DSC and DSC vs truth per round for each named run; each run has its own colours."""
    layers = [hv.HLine(stop_dsc).opts(color="grey", line_dash="dashed", line_width=1)]
    last = max((r.round for rounds in series.values() for r in rounds), default=1)
    for i, (name, rounds) in enumerate(series.items()):
        points = curve_points(rounds)
        inter_color, truth_color = display.series_colors(i)
        for label, pts, color, dash in ((f"{name}: inter-round DSC", points["inter"], inter_color, "solid"),
                                        (f"{name}: DSC vs truth", points["truth"], truth_color, "dashed")):
            if pts:
                layers.append(hv.Curve(pts, "round", "DSC", label=label).opts(color=color, line_dash=dash))
                layers.append(hv.Scatter(pts, "round", "DSC", label=label).opts(color=color, size=7))
    return hv.Overlay(layers).opts(
        title=f"DSC per round (grey dashes: stop at {stop_dsc})", legend_position="right",  # beside, not on the data
        xlabel="round", ylabel="DSC", frame_width=420, frame_height=240, ylim=(0, 1.02),
        xlim=(-0.3, max(last, 1) + 0.3), xticks=list(range(max(last, 1) + 1)), show_grid=True, toolbar=None)


def _note(text: str) -> pn.pane.HTML:
    """A line of text (HTML: nothing parsed per update)."""
    return pn.pane.HTML(f"<p>{text}</p>", margin=(0, 10))


def explanation_pane(state: SessionState) -> pn.pane.Alert:
    return pn.pane.Alert(pn.bind(lambda e: e, state.param.explanation), alert_type="warning",
                         visible=pn.bind(bool, state.param.explanation), css_classes=["empty-explanation"])


class SaliencyPanel(ShownPanel):
    """The three weight channels g(P) on a fixed scale, and the transformed input or its difference; its
    controls are built the first time there is a saliency to show."""

    state = param.ClassSelector(class_=SessionState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._controls = pn.Column(margin=0)

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
                   "shown")
    def _content(self):
        self.skip_if_hidden()
        s, d = self.state, self.state.display
        if s.case is None or not s.rounds:
            return _note("Run the coarse stage and one step to see the saliency transformation.")
        if len(s.rounds) == 1 and s.rounds[0].stopped:
            return _note(f"No fine round ran: the run stopped after the coarse stage "
                         f"({s.rounds[0].stopped}). {html.escape(s.explanation)}")
        if s.round_index == 0:
            return _note("Round 0 is the coarse stage: the coarse nets saw the raw image. "
                         "Pick a round ≥ 1 (the <b>Round shown</b> slider) to see what the fine net saw.")
        sal = s.saliency()
        if sal is None:
            return _note("No saliency for this view and round.")
        self._add_controls()
        geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
        size = frame_size(geom, SMALL)
        clim = (1.0 - d.saliency_span, 1.0 + d.saliency_span)
        dlim = (-d.difference_span, d.difference_span)
        difference = d.saliency_mode.startswith("difference")
        box = [] if sal.box is None else [(*display.box_to_display(sal.box, geom), 0, "#ffd700")]
        top, bottom = [], []
        for c, name in enumerate(("slice j−1", "slice j", "slice j+1")):
            top.append(image(display.to_display(sal.weights[c]), geom, "weight").opts(
                cmap=DIVERGING, clim=clim, colorbar=c == 2, tools=["hover"], title=f"g(P), {name}",
                xaxis=None, yaxis=None, toolbar=None, **size))
            if difference:
                arr = display.to_display(sal.transformed[c] - sal.image[c])
                plot = image(arr, geom, "change").opts(cmap=DIVERGING, clim=dlim, colorbar=c == 2,
                                                       title=f"X⊙g(P) − X, {name}")
            else:
                plot = image(display.to_display(sal.transformed[c]), geom, "input").opts(
                    cmap="gray", clim=(0, 1), title=f"X⊙g(P), {name}")
            bottom.append(plot.opts(tools=["hover"], xaxis=None, yaxis=None, toolbar=None, **size)
                           * rectangles(box))
        layout = hv.Layout(top + bottom).cols(3).opts(shared_axes=False)
        weights = np.asarray(sal.weights)
        caption = pn.pane.HTML(
            f"<div data-testid='saliency-caption'>{SALIENCY_CAPTION}<br>Round {s.rounds[s.round_index].round}: "
            f"weights from the round {s.rounds[s.round_index - 1].round} probabilities, window centred on slice "
            f"{sal.centre}; fixed colour scales g(P) {clim[0]:.3f}..{clim[1]:.3f}, difference ±{d.difference_span:g} "
            f"(this window's g(P) spans {weights.min():.3f}..{weights.max():.3f}); yellow = crop box.</div>")
        return pn.Column(caption, pn.pane.HoloViews(layout, css_classes=["saliency-plot"], linked_axes=False))

    def __panel__(self):
        return pn.Column(self._controls, self._content, css_classes=["saliency-panel"], name="saliency-panel")


class ProbabilityPanel(ShownPanel):
    """Per-view probabilities and the fused probability of the current round on this slice."""

    state = param.ClassSelector(class_=SessionState)

    @param.depends("state.case", "state.view", "state.slice_index", "state.round_index", "state.rounds", "shown")
    def _content(self):
        self.skip_if_hidden()
        s = self.state
        round_state = s.current_round
        if s.case is None or round_state is None:
            return _note("No round yet.")
        geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
        size = frame_size(geom, SMALL)
        items = []
        arrays = [(f"P from {v.value} nets", p) for v, p in round_state.view_probs.items()]
        for n, (title, prob) in enumerate([*arrays, ("fused P", round_state.fused_prob)]):
            arr = display.display_slice(np.asarray(prob, dtype=np.float32), s.view, s.slice_index)
            items.append(image(arr, geom, "p").opts(cmap="magma", clim=(0, 1), title=title, tools=["hover"],
                                                    colorbar=n == len(arrays), xaxis=None, yaxis=None,
                                                    toolbar=None, **size))
        return pn.pane.HoloViews(hv.Layout(items).cols(4).opts(shared_axes=False), linked_axes=False)

    def __panel__(self):
        return pn.Column(self._content, css_classes=["probability-panel"])


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


class ComparePanel(ShownPanel):
    """RSTN next to the stage-wise baseline on the same case, at the slice where they differ most."""

    state = param.ClassSelector(class_=SessionState)

    def _method_plot(self, key, rounds, index: int, geom) -> hv.Overlay:
        s = self.state
        hu = display.display_slice(s.case.image.data, s.view, index)
        ct = image(hu, geom, "HU").opts(cmap="gray", clim=s.display.clim(), xaxis=None, yaxis=None, toolbar=None,
                                        **frame_size(geom, 300))
        last = rounds[-1]
        pred = display.display_slice(last.mask, s.view, index)
        if s.case.label is not None:
            layer = display.error_layer(pred, display.display_slice(s.case.label, s.view, index))
            over = overlay_layer(layer, geom, "error").opts(cmap=ERROR_CMAP, clim=(0.5, 3.5), alpha=0.6)
        else:
            over = overlay_layer(display.mask_layer(pred), geom, "error").opts(cmap=[PRED_COLOR], clim=(0.5, 1))
        dsc = "" if last.dsc_vs_truth is None else f", DSC {last.dsc_vs_truth:.3f}"
        title = f"{s.choice(key).method.upper()}: round {last.round}{dsc}"
        boxes = rectangles(display.box_rows(rounds, s.view, index, geom))
        return (ct * over * boxes).opts(title=title, fontsize={"title": 10})

    @param.depends("state.case", "state.view", "state.slice_index", "state.rounds", "state.compare_rounds", "shown")
    def _content(self):
        self.skip_if_hidden()
        s = self.state
        if s.case is None or not s.rounds or not s.compare_rounds:
            return _note("Press <b>Compare with baseline</b> to run both methods to convergence on this case.")
        geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
        differs = s.difference_slice()
        index = s.slice_index if differs is None else differs
        where = (f"{s.view} slice {index}: where the two final masks differ most" if differs is not None
                 else f"{s.view} slice {index} (the two final masks agree on every slice)")
        plots = [self._method_plot(key, rounds, index, geom)
                 for key, rounds in ((s.model, s.rounds), (s.compare_model, s.compare_rounds))]
        names = [s.choice(s.model).method.upper(), s.choice(s.compare_model).method.upper()]
        series = dict(zip(names, (s.rounds, s.compare_rounds), strict=True))
        legend = pn.pane.HTML(f"<div data-testid='compare-where'>{where}</div>"
                              "<div class='legend'><span style='color:#2ca02c'>■ TP</span> "
                              "<span style='color:#ff7f0e'>■ FP</span> <span style='color:#1f77b4'>■ FN</span> "
                              "· boxes: each round's crop (dark = early)</div>")
        return pn.Column(
            legend,
            pn.Row(*(pn.pane.HoloViews(plot, linked_axes=False, css_classes=["compare-image"]) for plot in plots)),
            pn.pane.HoloViews(dsc_curves(series, s.stop_dsc()), linked_axes=False, css_classes=["compare-chart"]),
            pn.Row(pn.pane.HTML(rounds_table_html(s.rounds, "compare-main", s.choice_label(s.model))),
                   pn.pane.HTML(rounds_table_html(s.compare_rounds, "compare-baseline",
                                                  s.choice_label(s.compare_model)))))

    def __panel__(self):
        return pn.Column(self._content, css_classes=["compare-panel"])
