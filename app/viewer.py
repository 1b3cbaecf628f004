"""The main slice viewer, drawn in the browser: a slice change or a view switch never waits for the server.

The server sends the case once (CT as int16, truth as uint8, see :mod:`app.slice_payload`), the shown
round's mask once per round, and a small JSON record (every view's geometry, the crop boxes, the display
settings) per change of round or display setting; a Bokeh ``CustomJS`` (``app/slice_render.js``) cuts
the slice out of those arrays, colours the overlays (TP/FP/FN, truth, prediction, contours) and filters
the crop boxes whenever the slice slider, the view buttons or the record change. The keys
(:class:`KeyNav`) move the slider in the browser. The server learns the view and the slice afterwards
(both widgets are synced back) for the header, the tabs and the report.
Coordinates are millimetres of :mod:`app.display`'s frame (radiological convention).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import panel as pn
import param
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    GlyphRenderer,
    HoverTool,
    Image,
    LinearColorMapper,
    Quad,
    RadioButtonGroup,
    Range1d,
    Slider,
)
from bokeh.palettes import Greys256
from bokeh.plotting import figure

from rstn_core.types import View

from . import display, slice_payload
from .doc_push import DocPush
from .state import SessionState

RENDER_JS = (Path(__file__).with_name("slice_render.js")).read_text(encoding="utf-8")
CLEAR = "rgba(0, 0, 0, 0)"
# overlay codes drawn by slice_render.js: 1 TP, 2 FP, 3 FN, 4 truth, 5 prediction (0 = transparent)
OVERLAY_PALETTE = [*display.ERROR_CMAP, display.TRUTH_COLOR, display.PRED_COLOR]


def legend_html() -> str:
    return display.legend_html(
        [(display.ERROR_COLORS[display.TP], "TP (found)"), (display.ERROR_COLORS[display.FP], "FP (extra)"),
         (display.ERROR_COLORS[display.FN], "FN (missed)"), (display.TRUTH_COLOR, "truth"),
         (display.PRED_COLOR, "prediction")],
        "· boxes: where each round zoomed in (round 1 is cut from round 0's mask; dark = early)")


class KeyNav(pn.custom.JSComponent):
    """Keyboard slice navigation: ↑/↓, PageUp/PageDown or j/k anywhere on the page (not in text fields).

    Each press moves the viewer's slice slider in the browser (found by name); the slice is drawn at once.
    The server learns the slice 250 ms after the last press (the slider's ``value_throttled``), so quick
    presses are never lost and a burst costs the server one update."""

    target = param.String(default="", doc="the SliceViewer's id (names its slider and record)")

    _esm = """
    function find(name) {
      for (const doc of (window.Bokeh && window.Bokeh.documents) || []) {
        const m = doc.get_model_by_name(name);
        if (m) return m;
      }
      return null;
    }
    export function render({ model }) {
      const step = {ArrowUp: 1, k: 1, ArrowDown: -1, j: -1, PageUp: 10, PageDown: -10};
      const handler = (event) => {
        const origin = event.composedPath ? event.composedPath()[0] : event.target;
        const tag = ((origin && origin.tagName) || '').toLowerCase();
        if (tag === 'input' || tag === 'textarea' || tag === 'select') return;
        if (!(event.key in step)) return;
        const slider = find('rstn-slice-' + model.target);
        if (!slider) return;
        event.preventDefault();
        const next = slider.value + step[event.key] * (slider.step || 1);
        const value = Math.max(slider.start, Math.min(slider.end, next));
        if (value === slider.value) return;
        slider.setv({value: value}, {sync: false});  // drawn now, in the browser
        clearTimeout(slider.__rstn_timer);  // the server learns the slice once the keys rest
        slider.__rstn_timer = setTimeout(() => slider.setv({value_throttled: slider.value}, {check_eq: false}), 250);
      };
      document.addEventListener('keydown', handler);
      model.on('remove', () => document.removeEventListener('keydown', handler));
      // draw whatever the record already holds (a page rendered after the case was loaded)
      setTimeout(() => { const meta = find('rstn-meta-' + model.target); if (meta) meta.change.emit(); }, 0);
      const hint = document.createElement('span');
      hint.className = 'keynav-hint';
      hint.textContent = 'Keys: ↑/↓ or j/k = next/previous slice, PageUp/PageDown = ±10 (drawn in the browser)';
      return hint;
    }
    """


def _renderer(fig, source: ColumnDataSource, glyph) -> GlyphRenderer:
    """A glyph renderer without the selection / muted / hover copies ``figure.image`` would add (never used)."""
    renderer = GlyphRenderer(data_source=source, glyph=glyph, nonselection_glyph=None, muted_glyph=None)
    fig.renderers.append(renderer)
    return renderer


def _image_source() -> ColumnDataSource:
    """One source for the three drawn layers (CT, truth, prediction): one place, three image columns."""
    empty = [np.zeros((1, 1), dtype=np.float32)]
    return ColumnDataSource({"ct": empty, "truth": empty, "pred": empty, "x": [0], "y": [0], "dw": [1], "dh": [1]})


class SliceViewer(pn.viewable.Viewer):
    """CT slice with window/level, truth and prediction overlays (TP/FP/FN) and the crop boxes."""

    state = param.ClassSelector(class_=SessionState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.uid = uuid.uuid4().hex[:12]
        self._push = DocPush(self._flush)
        self._version = 0
        self.step = 1
        self._build()
        s, d = self.state, self.state.display
        s.param.watch(lambda *e: self._mark("volume", "shown", "meta", "slider"), ["case"])
        s.param.watch(lambda *e: self._mark("shown", "meta"), ["rounds", "round_index"])
        s.param.watch(self._on_navigation, ["view", "num_slices", "slice_index"])
        self._following = False  # True while the state follows the browser (nothing is sent back)
        d.param.watch(lambda *e: self._mark("meta"), ["window", "level", "width", "opacity", "outline", "errors",
                                                      "show_truth", "show_prediction", "show_boxes"])
        if s.case is not None:
            self._mark("volume", "shown", "meta", "slider")

    def _build(self) -> None:
        self.meta = ColumnDataSource({"json": ["{}"]}, name=f"rstn-meta-{self.uid}")
        # server-initiated navigation (a jump, a new case, a view chosen on the server): applied by the browser
        self.nav = ColumnDataSource({"seq": [0], "slice": [0], "view": ["axial"], "end": [1], "step": [1]})
        self.volume = ColumnDataSource({"ct": [np.zeros(0, np.int16)], "truth": [np.zeros(0, np.uint8)]})
        self.shown = ColumnDataSource({"pred": [np.zeros(0, np.uint8)]})
        self.slider = Slider(start=0, end=1, value=0, step=1, title="Slice", name=f"rstn-slice-{self.uid}",
                             width=400, css_classes=["slice-slider"])
        self.views = RadioButtonGroup(labels=[v.value for v in View], active=0, name=f"rstn-view-{self.uid}",
                                      css_classes=["view-buttons"])
        xlabel, ylabel = display.axis_labels("axial")
        fig = figure(frame_width=slice_payload.FRAME, frame_height=slice_payload.FRAME, x_range=Range1d(0, 1),
                     y_range=Range1d(0, 1), tools="pan,wheel_zoom,box_zoom,reset,save", toolbar_location="right",
                     title="loading the CT…", x_axis_label=xlabel, y_axis_label=ylabel,
                     width=slice_payload.FRAME + 100, height=slice_payload.FRAME + 60,  # frame_* take precedence
                     css_classes=["slice-viewer"])
        self.ct_mapper = LinearColorMapper(palette=Greys256, low=-135, high=215)
        overlay = LinearColorMapper(palette=OVERLAY_PALETTE, low=0.5, high=5.5, low_color=CLEAR)
        images = _image_source()
        ct = _renderer(fig, images, Image(image="ct", x="x", y="y", dw="dw", dh="dh", color_mapper=self.ct_mapper))
        layers = [_renderer(fig, images, Image(image=name, x="x", y="y", dw="dw", dh="dh", color_mapper=overlay,
                                               global_alpha=0.6)) for name in ("truth", "pred")]
        boxes = ColumnDataSource({k: [] for k in ("left", "bottom", "right", "top", "round", "color")})
        _renderer(fig, boxes, Quad(left="left", right="right", bottom="bottom", top="top", fill_alpha=0,
                                   line_color="color", line_width=2))
        fig.add_tools(HoverTool(renderers=[ct], tooltips=[("HU", "@ct{0}"), ("mm", "$x{0.0}, $y{0.0}")]))
        render = CustomJS(args=dict(meta=self.meta, nav=self.nav, volume=self.volume, shown=self.shown,
                                    images=images, boxes=boxes, fig=fig,
                                    xaxis=fig.xaxis[0], yaxis=fig.yaxis[0], slider=self.slider, views=self.views,
                                    ct_mapper=self.ct_mapper, truth_glyph=layers[0].glyph,
                                    pred_glyph=layers[1].glyph), code=RENDER_JS)
        self.meta.js_on_change("change", render)
        self.nav.js_on_change("change", render)
        self.slider.js_on_change("value", render)
        self.slider.on_change("value_throttled", self._on_slider)  # keys: debounced in the browser
        self.views.js_on_change("active", render)
        self.views.on_change("active", self._on_views)
        self.figure = fig
        self.note = pn.pane.HTML(legend_html(), css_classes=["grid-note"], margin=(0, 10))  # + the grid note
        self.keys = KeyNav(target=self.uid)

    # --- server -> browser: batched, on the document's own tick ---------------------------------

    def _mark(self, *parts: str) -> None:
        self._push.mark(*parts)

    def record(self) -> dict:
        """The JSON record the browser draws the current view with."""
        s, d = self.state, self.state.display
        looks = {"errors": d.errors, "outline": d.outline, "show_truth": d.show_truth,
                 "show_prediction": d.show_prediction, "show_boxes": d.show_boxes, "opacity": d.opacity,
                 "clim": list(d.clim())}
        target = s.current_mask() if s.rounds else s.case.label  # the state's own rule (_centre_navigation)
        centres = {v.value: display.largest_slice(target, v) if target is not None
                   else display.num_slices(s.case.image.shape, v) // 2 for v in View}
        return slice_payload.case_meta(s.case, self.step, s.rounds, s.round_index, looks, centres, self._version)

    def _flush(self, dirty: set[str]) -> None:
        s = self.state
        if s.case is None:
            return
        if "volume" in dirty:
            self.step = slice_payload.display_step(s.case.image.shape)
            self.volume.data = {"ct": [slice_payload.shared_ct_array(s.case.image.data, self.step)],
                                "truth": [slice_payload.shared_mask_array(s.case.label, self.step)]}
            note = slice_payload.grid_note(s.case.image.shape, self.step)
            self.note.object = legend_html() + (f"<div>{note}</div>" if note else "")
        if "shown" in dirty:
            # only round 0 can be the same array in many sessions (the shared demo case's cached round 0); a
            # session's own rounds would push the shared CT and truth out of the small shared cache
            encode = slice_payload.shared_mask_array if s.round_index == 0 else slice_payload.mask_array
            self.shown.data = {"pred": [encode(s.current_mask(), self.step)]}
        if "slider" in dirty:
            n = display.num_slices(s.case.image.shape, s.view)
            index = int(np.clip(s.slice_index, 0, n - 1))
            self.nav.data = {"seq": [self.nav.data["seq"][0] + 1], "slice": [index], "view": [str(s.view)],
                             "end": [max(n - 1, 1)], "step": [self.step]}
            if self._push.building:  # the page is not served yet: the widgets start where the state is
                self.slider.update(end=max(n - 1, 1), step=self.step, value=index)
                self.views.active = self.views.labels.index(str(s.view))
        if dirty - {"slider"}:
            self._version += 1
            self.meta.data = {"json": [json.dumps(self.record())]}

    # --- browser -> server ------------------------------------------------------------------------

    def _on_navigation(self, *events) -> None:
        if not self._following:  # a change the browser did not make: send it there
            self._mark("slider")

    def _follow(self, **values) -> None:
        """The browser moved (slice or view): the state follows, nothing is sent back (no echo of a stale
        value while the user keeps pressing keys)."""
        self._following = True
        try:
            self.state.param.update(**values)
        finally:
            self._following = False

    def _on_slider(self, attr, old, new) -> None:
        s = self.state
        index = int(np.clip(int(round(new)), 0, max(s.num_slices - 1, 0)))
        if index != s.slice_index:
            self._follow(slice_index=index)

    def _on_views(self, attr, old, new) -> None:
        view = self.views.labels[int(new)]
        if view != self.state.view:
            self._follow(view=view)  # the state centres the view's slice as the browser did

    def __panel__(self):
        # the Bokeh models carry their own css classes (a Bokeh pane hands its model over unwrapped)
        return pn.Column(pn.pane.Bokeh(self.views), pn.pane.Bokeh(self.slider), pn.pane.Bokeh(self.figure),
                         self.keys, self.note, css_classes=["viewer-column"])
