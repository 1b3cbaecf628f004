"""Read-only Panel/HoloViews views over a :class:`SessionState` (no torch, no engine calls except
through the state's accessors). Each view is a ``pn.viewable.Viewer`` built from parameters.

Coordinates: every image is drawn in millimetres of the display frame of :mod:`app.display`
(radiological convention, physical aspect from the voxel spacing).
"""

from __future__ import annotations

import holoviews as hv
import numpy as np
import panel as pn
import param

from rstn_core.types import View

from . import backend, display
from .state import SessionState

FRAME = 380  # px, the larger side of the main slice plot
SMALL = 190
ERROR_CMAP = [display.ERROR_COLORS[display.TP], display.ERROR_COLORS[display.FP], display.ERROR_COLORS[display.FN]]
TRUTH_COLOR = "#ffd700"
PRED_COLOR = "#e31a1c"
DIVERGING = "RdBu_r"
CLEAR = {"NaN": "transparent", "min": "transparent"}


def _frame_size(geom: display.DisplayGeometry, largest: int) -> dict:
    """Frame width and height (px) with the physical aspect of the view; the larger side is ``largest``."""
    aspect = geom.aspect
    if aspect >= 1:
        return {"frame_width": largest, "frame_height": max(40, int(round(largest / aspect)))}
    return {"frame_height": largest, "frame_width": max(40, int(round(largest * aspect)))}


def _image(array: np.ndarray, geom: display.DisplayGeometry, vdim: str = "value", label: str = "") -> hv.Image:
    return hv.Image(array, bounds=geom.bounds, kdims=["x_mm", "y_mm"], vdims=[vdim], label=label)


def _empty(geom: display.DisplayGeometry) -> hv.Image:
    w, h = geom.view_hw[1], geom.view_hw[0]
    return _image(np.zeros((w, h), dtype=np.float32), geom).opts(clipping_colors=CLEAR)


def _layer(layer: np.ndarray, geom: display.DisplayGeometry, vdim: str) -> hv.Image:
    """A NaN-background overlay as 0-background (no all-NaN warnings); 0 is below clim -> transparent."""
    return _image(np.nan_to_num(layer, nan=0.0), geom, vdim).opts(clipping_colors=CLEAR)


class SliceViewer(pn.viewable.Viewer):
    """CT slice with window/level, truth and prediction overlays (TP/FP/FN) and the crop boxes."""

    state = param.ClassSelector(class_=SessionState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        s, d = self.state, self.state.display
        nav = hv.streams.Params(s, ["case", "view", "slice_index", "round_index", "rounds"])
        looks = hv.streams.Params(d, ["outline", "errors", "show_truth", "show_prediction", "show_boxes"])
        ct = hv.DynamicMap(self._ct, streams=[nav]).apply.opts(clim=d.clim)
        truth = hv.DynamicMap(self._truth, streams=[nav, looks]).apply.opts(alpha=d.param.opacity)
        pred = hv.DynamicMap(self._prediction, streams=[nav, looks]).apply.opts(alpha=d.param.opacity)
        boxes = hv.DynamicMap(self._boxes, streams=[nav, looks])
        self._overlay = (ct * truth * pred * boxes).opts(hv.opts.Overlay(show_legend=False))
        self._pane = pn.pane.HoloViews(self._overlay, css_classes=["slice-viewer"], name="slice-viewer",
                                       linked_axes=False)

    def _geom(self, case, view) -> display.DisplayGeometry:
        return display.geometry(case.image.shape, case.image.spacing, view)

    def _ct(self, case, view, slice_index, round_index, rounds) -> hv.Image:
        if case is None:
            return hv.Image(np.zeros((2, 2)), bounds=(0, 0, 1, 1), kdims=["x_mm", "y_mm"], vdims=["HU"])
        geom = self._geom(case, view)
        hu = display.display_slice(case.image.data, view, slice_index)
        n = display.num_slices(case.image.shape, view)
        title = f"{case.case_id} · {view} slice {slice_index}/{n - 1}"
        if rounds:
            title += f" · round {rounds[min(round_index, len(rounds) - 1)].round}"
        return _image(hu, geom, "HU").opts(
            cmap="gray", tools=["hover"], title=title, xlabel="patient right ← → left (mm)",
            ylabel="mm", colorbar=False, toolbar="above", **_frame_size(geom, FRAME))

    def _truth(self, case, view, slice_index, round_index, rounds, outline, errors, show_truth,
               show_prediction, show_boxes) -> hv.Image:
        if case is None:
            return hv.Image(np.zeros((2, 2)), bounds=(0, 0, 1, 1)).opts(clipping_colors=CLEAR, clim=(0.5, 1))
        geom = self._geom(case, view)
        coloured_by_errors = errors and bool(rounds) and show_prediction
        if case.label is None or not show_truth or coloured_by_errors:
            return _empty(geom).opts(cmap=[TRUTH_COLOR], clim=(0.5, 1.0))
        mask = display.display_slice(case.label, view, slice_index)
        layer = display.mask_layer(display.contour(mask) if outline else mask)
        return _layer(layer, geom, "truth").opts(cmap=[TRUTH_COLOR], clim=(0.5, 1.0))

    def _prediction(self, case, view, slice_index, round_index, rounds, outline, errors, show_truth,
                    show_prediction, show_boxes) -> hv.Image:
        if case is None:
            return hv.Image(np.zeros((2, 2)), bounds=(0, 0, 1, 1)).opts(clipping_colors=CLEAR, clim=(0.5, 1))
        geom = self._geom(case, view)
        if not rounds or not show_prediction:
            return _empty(geom).opts(cmap=ERROR_CMAP, clim=(0.5, 3.5))
        state = rounds[min(round_index, len(rounds) - 1)]
        pred = display.display_slice(state.mask, view, slice_index)
        if errors and case.label is not None:
            truth = display.display_slice(case.label, view, slice_index)
            layer = display.error_layer(pred, truth, outline=outline)
            return _layer(layer, geom, "error").opts(cmap=ERROR_CMAP, clim=(0.5, 3.5))
        layer = display.mask_layer(display.contour(pred) if outline else pred)
        return _layer(layer, geom, "prediction").opts(cmap=[PRED_COLOR], clim=(0.5, 1.0))

    def _boxes(self, case, view, slice_index, round_index, rounds, outline, errors, show_truth,
               show_prediction, show_boxes) -> hv.Rectangles:
        rows = []
        if case is not None and rounds and show_boxes:
            geom = self._geom(case, view)
            upto = min(round_index, len(rounds) - 1)
            for state in rounds[: upto + 1]:
                box = state.boxes.get(View.parse(view), {}).get(int(slice_index))
                if box is not None:
                    rows.append((*display.box_to_display(box, geom), state.round))
        rects = hv.Rectangles(rows, vdims=["round"]) if rows else hv.Rectangles([], vdims=["round"])
        return rects.opts(fill_alpha=0, line_color="round", cmap="viridis", line_width=2,
                          clim=(0, max(len(rounds) - 1, 1) if rounds else 1))

    def __panel__(self):
        legend = pn.pane.HTML(
            "<div class='legend'>"
            f"<span style='color:{display.ERROR_COLORS[display.TP]}'>■ TP</span> "
            f"<span style='color:{display.ERROR_COLORS[display.FP]}'>■ FP</span> "
            f"<span style='color:{display.ERROR_COLORS[display.FN]}'>■ FN</span> "
            f"<span style='color:{TRUTH_COLOR}'>■ truth</span> "
            f"<span style='color:{PRED_COLOR}'>■ prediction</span> · boxes: crop of each round (dark = early)"
            "</div>", margin=(0, 10))
        return pn.Column(self._pane, legend)


class SaliencyPanel(pn.viewable.Viewer):
    """The three weight channels g(P) (diverging around 1) and the transformed input X ⊙ g(P)."""

    state = param.ClassSelector(class_=SessionState)

    @param.depends("state.case", "state.view", "state.slice_index", "state.round_index", "state.rounds")
    def _content(self):
        s = self.state
        if s.case is None or not s.rounds:
            return pn.pane.Markdown("Run the coarse stage and one step to see the saliency transformation.")
        if s.round_index == 0:
            return pn.pane.Markdown("Round 0 is the coarse stage: the coarse nets saw the raw image. "
                                    "Pick a round ≥ 1 to see what the fine net saw.")
        sal = s.saliency()
        if sal is None:
            return pn.pane.Markdown("No saliency for this view and round.")
        geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
        clim = display.diverging_clim(sal.weights)
        size = _frame_size(geom, SMALL)
        weights, inputs = [], []
        box = None if sal.box is None else display.box_to_display(sal.box, geom)
        for c, name in enumerate(("slice j−1", "slice j", "slice j+1")):
            w = _image(display.to_display(sal.weights[c]), geom, "weight").opts(
                cmap=DIVERGING, clim=clim, colorbar=c == 2, tools=["hover"], title=f"g(P) channel {c + 1} ({name})",
                xaxis=None, yaxis=None, toolbar=None, **size)
            t = _image(display.to_display(sal.transformed[c]), geom, "input").opts(
                cmap="gray", clim=(0, 1), tools=["hover"], title=f"X⊙g(P) channel {c + 1}",
                xaxis=None, yaxis=None, toolbar=None, **size)
            if box is not None:
                t = t * hv.Rectangles([box]).opts(fill_alpha=0, line_color="#ffd700", line_width=2)
            weights.append(w)
            inputs.append(t)
        layout = hv.Layout(weights + inputs).cols(3).opts(shared_axes=False)
        caption = pn.pane.HTML(
            f"<div data-testid='saliency-caption'>Round {s.rounds[s.round_index].round}: weights from the "
            f"round {s.rounds[s.round_index - 1].round} probabilities, window centred on slice {sal.centre}; "
            f"colour limits {clim[0]:.2f}..{clim[1]:.2f} (white = 1 = no change); yellow = crop box.</div>")
        return pn.Column(caption, pn.pane.HoloViews(layout, css_classes=["saliency-plot"], linked_axes=False))

    def __panel__(self):
        return pn.Column(self._content, css_classes=["saliency-panel"], name="saliency-panel")


class ProbabilityPanel(pn.viewable.Viewer):
    """Per-view probabilities and the fused probability of the current round on this slice."""

    state = param.ClassSelector(class_=SessionState)

    @param.depends("state.case", "state.view", "state.slice_index", "state.round_index", "state.rounds")
    def _content(self):
        s = self.state
        round_state = s.current_round
        if s.case is None or round_state is None:
            return pn.pane.Markdown("No round yet.")
        geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
        size = _frame_size(geom, SMALL)
        items = []
        for view, prob in round_state.view_probs.items():
            arr = display.display_slice(np.asarray(prob, dtype=np.float32), s.view, s.slice_index)
            items.append(_image(arr, geom, "p").opts(cmap="magma", clim=(0, 1), title=f"P from {view.value} nets",
                                                     tools=["hover"], xaxis=None, yaxis=None, toolbar=None,
                                                     **size))
        fused = display.display_slice(round_state.fused_prob, s.view, s.slice_index)
        items.append(_image(fused, geom, "p").opts(cmap="magma", clim=(0, 1), title="fused P", colorbar=True,
                                                   tools=["hover"], xaxis=None, yaxis=None, toolbar=None,
                                                   **size))
        return pn.pane.HoloViews(hv.Layout(items).cols(4).opts(shared_axes=False), linked_axes=False)

    def __panel__(self):
        return pn.Column(self._content, css_classes=["probability-panel"])


def rounds_table_html(rounds, test_id: str = "rounds-table", title: str = "") -> str:
    """Plain HTML table of the numbers per round (also used by the report)."""
    head = ("<tr><th>round</th><th>inter-round DSC</th><th>DSC vs truth</th><th>voxels</th>"
            "<th>fine windows</th><th>seconds</th><th>stopped</th></tr>")
    body = []
    for r in rounds:
        windows = sum(len(b) for b in r.boxes.values())
        inter = "–" if r.inter_round_dsc is None else f"{r.inter_round_dsc:.4f}"
        truth = "–" if r.dsc_vs_truth is None else f"{r.dsc_vs_truth:.4f}"
        body.append(f"<tr><td>{r.round}</td><td>{inter}</td><td>{truth}</td><td>{int(np.count_nonzero(r.mask))}</td>"
                    f"<td>{windows}</td><td>{r.seconds:.2f}</td><td>{r.stopped or ''}</td></tr>")
    caption = f"<caption>{title}</caption>" if title else ""
    return (f"<table class='rounds' data-testid='{test_id}'>{caption}<thead>{head}</thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def dsc_curves(series: dict, stop_dsc: float) -> hv.Overlay:
    """Inter-round DSC and DSC vs truth per round for each named list of rounds, stop threshold line."""
    layers = [hv.HLine(stop_dsc).opts(color="grey", line_dash="dashed", line_width=1)]
    last = max((r.round for rounds in series.values() for r in rounds), default=1)
    styles = {0: "solid", 1: "dotdash"}
    for i, (name, rounds) in enumerate(series.items()):
        inter = [(r.round, r.inter_round_dsc) for r in rounds if r.inter_round_dsc is not None]
        truth = [(r.round, r.dsc_vs_truth) for r in rounds if r.dsc_vs_truth is not None]
        dash = styles.get(i, "dashed")
        for label, pts, color in ((f"{name}: inter-round DSC", inter, "#1f77b4"),
                                  (f"{name}: DSC vs truth", truth, "#d62728")):
            if pts:
                layers.append(hv.Curve(pts, "round", "DSC", label=label).opts(color=color, line_dash=dash))
                layers.append(hv.Scatter(pts, "round", "DSC", label=label).opts(color=color, size=7))
    return hv.Overlay(layers).opts(
        title=f"DSC per round (dashed grey: stop threshold {stop_dsc})", legend_position="bottom_right",
        xlabel="round", ylabel="DSC",
        frame_width=420, frame_height=240, ylim=(0, 1.02), xlim=(-0.3, max(last, 1) + 0.3),
        xticks=list(range(max(last, 1) + 1)), show_grid=True, toolbar=None)


class ConvergencePanel(pn.viewable.Viewer):
    """The chart of inter-round DSC (with the stop threshold) and DSC vs truth, and the numbers."""

    state = param.ClassSelector(class_=SessionState)

    @param.depends("state.rounds", "state.compare_rounds")
    def _content(self):
        s = self.state
        stop = s.stop_dsc()
        series = {"RSTN" if not s.choice() else s.choice().method.upper(): s.rounds}
        chart = pn.pane.HoloViews(dsc_curves(series, stop), css_classes=["dsc-chart"], linked_axes=False)
        points = sum(1 for r in s.rounds if r.inter_round_dsc is not None)
        note = pn.pane.HTML(f"<span data-testid='dsc-points'>{points}</span> inter-round DSC point(s)")
        return pn.Column(chart, note, pn.pane.HTML(rounds_table_html(s.rounds)))

    def __panel__(self):
        return pn.Column(self._content, css_classes=["convergence-panel"])


class ComparePanel(pn.viewable.Viewer):
    """RSTN next to the stage-wise baseline on the same case (the paper's Figures 2 and 5)."""

    state = param.ClassSelector(class_=SessionState)

    @param.depends("state.case", "state.view", "state.slice_index", "state.rounds", "state.compare_rounds")
    def _content(self):
        s = self.state
        if s.case is None or not s.rounds or not s.compare_rounds:
            return pn.pane.Markdown("Press **Compare with baseline** to run both methods to convergence on this case.")
        geom = display.geometry(s.case.image.shape, s.case.image.spacing, s.view)
        hu = display.display_slice(s.case.image.data, s.view, s.slice_index)
        plots = []
        for key, rounds in ((s.model, s.rounds), (s.compare_model, s.compare_rounds)):
            last = rounds[-1]
            ct = _image(hu, geom, "HU").opts(cmap="gray", clim=s.display.clim(), xaxis=None,
                                             yaxis=None, toolbar=None, **_frame_size(geom, 300))
            pred = display.display_slice(last.mask, s.view, s.slice_index)
            if s.case.label is not None:
                layer = display.error_layer(pred, display.display_slice(s.case.label, s.view, s.slice_index))
                over = _layer(layer, geom, "error").opts(cmap=ERROR_CMAP, clim=(0.5, 3.5), alpha=0.6)
            else:
                over = _layer(display.mask_layer(pred), geom, "prediction").opts(cmap=[PRED_COLOR], clim=(0.5, 1))
            dsc = "" if last.dsc_vs_truth is None else f" · DSC {last.dsc_vs_truth:.4f}"
            plots.append((ct * over).opts(title=f"{s.choice_label(key)} · round {last.round}{dsc}"))
        series = {s.choice(s.model).method.upper(): s.rounds,
                  s.choice(s.compare_model).method.upper(): s.compare_rounds}
        stop = s.stop_dsc()
        return pn.Column(
            pn.Row(*(pn.pane.HoloViews(plot, linked_axes=False) for plot in plots)),
            pn.pane.HoloViews(dsc_curves(series, stop), linked_axes=False),
            pn.Row(pn.pane.HTML(rounds_table_html(s.rounds, "compare-main", s.choice_label(s.model))),
                   pn.pane.HTML(rounds_table_html(s.compare_rounds, "compare-baseline",
                                                  s.choice_label(s.compare_model)))))

    def __panel__(self):
        return pn.Column(self._content, css_classes=["compare-panel"])


class KeyNav(pn.custom.JSComponent):
    """Keyboard slice navigation: ↑/↓, PageUp/PageDown or j/k anywhere on the page (not in text fields)."""

    key = param.String(default="")
    presses = param.Integer(default=0)

    _esm = """
    export function render({ model }) {
      const keys = ['ArrowUp', 'ArrowDown', 'PageUp', 'PageDown', 'j', 'k'];
      const handler = (event) => {
        const origin = event.composedPath ? event.composedPath()[0] : event.target;
        const tag = ((origin && origin.tagName) || '').toLowerCase();
        if (tag === 'input' || tag === 'textarea' || tag === 'select') return;
        if (!keys.includes(event.key)) return;
        event.preventDefault();
        model.key = event.key;
        model.presses = model.presses + 1;
      };
      document.addEventListener('keydown', handler);
      model.on('remove', () => document.removeEventListener('keydown', handler));
      const hint = document.createElement('span');
      hint.className = 'keynav-hint';
      hint.textContent = 'Keys: ↑/↓ or j/k = next/previous slice, PageUp/PageDown = ±10';
      return hint;
    }
    """

    def step_for(self, key: str) -> int:
        return {"ArrowUp": 1, "k": 1, "ArrowDown": -1, "j": -1, "PageUp": 10, "PageDown": -10}.get(key, 0)


class Sidebar(pn.viewable.Viewer):
    """Every control of the page; widgets write to the state, never the other way round except
    through parameter links."""

    state = param.ClassSelector(class_=SessionState)
    report_callback = param.Callable(default=None, doc="() -> io.BytesIO of the report")

    def __init__(self, **params) -> None:
        super().__init__(**params)
        s, d = self.state, self.state.display
        labels = {s.choice_label(k): k for k in s.param.model.objects}
        self.model = pn.widgets.Select(name="Model", options=labels, value=s.model, css_classes=["model-select"])
        self.model.link(s, value="model")
        self.compare_model = pn.widgets.Select(name="Baseline for comparison", options=labels, value=s.compare_model)
        self.compare_model.link(s, value="compare_model")

        self.demo = pn.widgets.Button.from_param(s.param.load_demo, name="Load demo case", button_type="default")
        self.organ = pn.widgets.TextInput.from_param(s.param.organ, name="Organ label id(s)")
        self.image_drop = pn.widgets.FileDropper(
            name="CT (NIfTI)", label="Drop a CT (.nii / .nii.gz)", multiple=False,
            max_file_size=f"{backend.MAX_UPLOAD_MB}MB", chunk_size=4_000_000, css_classes=["image-drop"])
        self.label_drop = pn.widgets.FileDropper(
            name="Label map (optional)", label="Drop its label map (optional)", multiple=False,
            max_file_size=f"{backend.MAX_UPLOAD_MB}MB", chunk_size=4_000_000)
        self.load_upload = pn.widgets.Button(name="Load uploaded files")
        self.load_upload.on_click(self._on_upload)
        root = str(backend.data_root())
        self.picker = pn.widgets.FileSelector(directory=root, root_directory=root, only_files=False,
                                              width=600, name="Server data folder", css_classes=["file-picker"])
        self.as_image = pn.widgets.Button(name="Selected → image")
        self.as_label = pn.widgets.Button(name="Selected → label")
        self.as_image.on_click(lambda e: self._pick("image_path"))
        self.as_label.on_click(lambda e: self._pick("label_path"))
        self.load_files = pn.widgets.Button.from_param(s.param.load_files, name="Load server files")

        self.coarse = pn.widgets.Button.from_param(s.param.coarse, name="Coarse", button_type="primary")
        self.step = pn.widgets.Button.from_param(s.param.step, name="Step", button_type="primary")
        self.run = pn.widgets.Button.from_param(s.param.run, name="Run to convergence", button_type="primary")
        self.cancel = pn.widgets.Button.from_param(s.param.cancel, name="Cancel", button_type="warning")
        self.reset = pn.widgets.Button.from_param(s.param.reset, name="Reset")
        self.compare = pn.widgets.Button.from_param(s.param.compare, name="Compare with baseline")
        self.progress = pn.indicators.Progress(value=0, max=100, width=280, bar_color="primary",
                                               css_classes=["run-progress"])

        self.view = pn.widgets.RadioButtonGroup.from_param(s.param.view, name="View")
        self.slice = pn.widgets.IntSlider(name="Slice", start=0, end=max(s.num_slices - 1, 1), value=s.slice_index,
                                          css_classes=["slice-slider"])
        self.slice.param.watch(lambda e: setattr(s, "slice_index", int(e.new)), "value_throttled")
        self.round = pn.widgets.IntSlider(name="Round shown", start=0, end=1, value=0, disabled=True,
                                          css_classes=["round-slider"])
        self.round.param.watch(lambda e: setattr(s, "round_index", int(e.new)), "value")
        self.worst = pn.widgets.Button.from_param(s.param.jump_to_error, name="Jump to the worst slice")
        self.keys = KeyNav()
        self.keys.param.watch(self._on_key, "presses")

        self.window = pn.widgets.Select.from_param(d.param.window, name="Window")
        self.level = pn.widgets.FloatInput.from_param(d.param.level, name="Custom level (HU)", width=130)
        self.width = pn.widgets.FloatInput.from_param(d.param.width, name="Custom width (HU)", width=130)
        self.opacity = pn.widgets.FloatSlider.from_param(d.param.opacity, name="Overlay opacity", step=0.05)
        self.checks = [pn.widgets.Checkbox.from_param(p, name=n) for p, n in (
            (d.param.errors, "TP / FP / FN colouring"), (d.param.outline, "Contours instead of fill"),
            (d.param.show_truth, "Ground truth"), (d.param.show_prediction, "Prediction"),
            (d.param.show_boxes, "Crop boxes"))]
        self.download = pn.widgets.FileDownload(callback=self._report, filename="rstn_report.html",
                                                label="Export HTML report", button_type="success",
                                                css_classes=["report-download"], embed=False)
        s.param.watch(self._sync, ["slice_index", "num_slices", "rounds", "round_index", "busy", "progress",
                                   "case"])
        self._sync()

    def _sync(self, *events) -> None:
        s = self.state
        self.slice.end = max(s.num_slices - 1, 1)
        self.slice.value = s.slice_index
        n = len(s.rounds)
        self.round.end = max(n - 1, 1)
        self.round.disabled = n < 2
        self.round.value = min(s.round_index, max(n - 1, 0))
        self.progress.value = int(s.progress)
        self.progress.active = bool(s.busy)
        for button in (self.coarse, self.step, self.run, self.compare, self.reset, self.load_files, self.demo,
                       self.load_upload):
            button.disabled = bool(s.busy)
        self.cancel.disabled = not s.busy
        if s.case is not None:
            self.download.filename = f"rstn_report_{s.case.case_id}.html"

    def _on_key(self, event) -> None:
        s = self.state
        delta = self.keys.step_for(self.keys.key)
        s.slice_index = int(np.clip(s.slice_index + delta, 0, max(s.num_slices - 1, 0)))

    def _pick(self, target: str) -> None:
        selected = self.picker.value
        if not selected:
            self.state.error = "select a file or DICOM folder in the data folder first"
            return
        try:
            path = backend.inside_root(selected[0], backend.data_root())
        except Exception as exc:  # noqa: BLE001
            self.state.error = str(exc)
            return
        setattr(self.state, target, str(path))
        self.state.status = f"{target.replace('_', ' ')}: {path}"

    def _on_upload(self, event) -> None:
        images = dict(self.image_drop.value or {})
        if not images:
            self.state.error = "drop a CT file (.nii or .nii.gz) first"
            return
        image_name, image_bytes = next(iter(images.items()))
        labels = dict(self.label_drop.value or {})
        label_name, label_bytes = next(iter(labels.items())) if labels else (None, None)
        self.state.load_upload(image_name, _as_bytes(image_bytes), label_name,
                               None if label_bytes is None else _as_bytes(label_bytes))

    def _report(self):
        import io

        from . import report

        try:
            text = report.report_for_session(self.state)
        except Exception as exc:  # noqa: BLE001 - show it, keep the page
            self.state.error = f"report: {exc}"
            text = f"<html><body><p>Report failed: {exc}</p></body></html>"
        return io.BytesIO(text.encode("utf-8"))

    def data_panel(self) -> pn.viewable.Viewable:
        """Upload and server-folder loading, shown in its own tab (the file picker needs room)."""
        s = self.state
        paths = pn.pane.Markdown(pn.bind(lambda i, l: f"image: `{i or '–'}`  \nlabel: `{l or '–'}`",
                                         s.param.image_path, s.param.label_path))
        limit = f"Uploads: NIfTI only, at most {backend.MAX_UPLOAD_MB} MB per file (RSTN_MAX_UPLOAD_MB)."
        return pn.Row(
            pn.Column("#### Upload a NIfTI", limit, self.image_drop, self.label_drop, self.load_upload, width=340),
            pn.Column(f"#### Server data folder `{backend.data_root()}`",
                      "Select a NIfTI file or a DICOM folder, then set it as the image (and a label map).",
                      self.picker, pn.Row(self.as_image, self.as_label), paths, self.load_files, width=620),
            css_classes=["data-panel"])

    def __panel__(self):
        return pn.Column(
            "### Model", self.model, self.compare_model,
            "### Case", self.demo, self.organ,
            pn.pane.Markdown("Other CTs: **Load another CT** above the images.", margin=(0, 10)),
            "### Inference", pn.Row(self.coarse, self.step), self.run, pn.Row(self.cancel, self.reset), self.compare,
            self.progress,
            "### Navigation", self.view, self.slice, self.round, self.worst, self.keys,
            "### Display", self.window, pn.Row(self.level, self.width), self.opacity, *self.checks,
            "### Export", self.download,
            width=320, css_classes=["sidebar"])


def _as_bytes(value) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else bytes(value)
