"""Rows of small slice images (raw Bokeh figures) built once and updated in place: a new round, slice or view
changes their arrays, titles and colour scales, never their models (rebuilding a HoloViews layout of six
images took the server ~1 s per change; see ``benchmarks/RESULTS_app.md``).

Arrays are display arrays of :mod:`app.display` (``(W, H)``, row 0 at the top); coordinates are millimetres of
the view's :class:`app.display.DisplayGeometry`, as in the main viewer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from bokeh.layouts import column, row
from bokeh.models import ColorBar, ColumnDataSource, HoverTool, Image, LinearColorMapper, Quad, Range1d
from bokeh.plotting import figure

from . import display
from .slice_payload import frame_size

EMPTY = np.zeros((1, 1), dtype=np.float32)
CLEAR = "rgba(0, 0, 0, 0)"


@dataclass(frozen=True)
class RowSpec:
    """One row: ``n`` images sharing one colour scale (``palette``, ``low``..``high``), its colour bar titled
    ``bar`` beside the last image, the hover label ``value``, a layer of coded overlays (``overlay``: a colour
    per code) and a layer of crop boxes (``boxes``)."""

    n: int
    palette: Sequence[str]
    low: float
    high: float
    bar: str = ""  # no colour bar when empty
    value: str = "value"
    boxes: bool = False
    overlay: Sequence[str] = ()  # colours of overlay codes 1..k drawn over the image (0: transparent)


class ImageGrid:
    """``model``: a Bokeh layout of ``rows`` of ``size`` px figures (the larger side of each frame)."""

    def __init__(self, rows: Sequence[RowSpec], size: int, css_class: str) -> None:
        self.size = size
        self.x_range, self.y_range = Range1d(0, 1), Range1d(0, 1)  # shared: every image shows the same frame
        self.mappers: list[LinearColorMapper] = []
        self.sources: list[list[ColumnDataSource]] = []
        self.box_sources: list[list[ColumnDataSource]] = []  # per row, per figure (empty: no boxes)
        self.figures: list[list] = []
        self.bars: list[ColorBar] = []
        for spec in rows:
            mapper = LinearColorMapper(palette=list(spec.palette), low=spec.low, high=spec.high)
            sources, figures = [], []
            box_sources = []
            overlay = (LinearColorMapper(palette=list(spec.overlay), low=0.5, high=len(spec.overlay) + 0.5,
                                         low_color=CLEAR) if spec.overlay else None)
            for i in range(spec.n):
                fig = figure(frame_width=size, frame_height=size, x_range=self.x_range, y_range=self.y_range,
                             toolbar_location=None, tools="", title=" ", min_border=4)
                fig.axis.visible = False
                fig.grid.visible = False
                source = ColumnDataSource({"image": [EMPTY], "overlay": [EMPTY], "x": [0.0], "y": [0.0],
                                           "dw": [1.0], "dh": [1.0]})
                image = fig.add_glyph(source, Image(image="image", x="x", y="y", dw="dw", dh="dh",
                                                    color_mapper=mapper))
                if overlay is not None:
                    fig.add_glyph(source, Image(image="overlay", x="x", y="y", dw="dw", dh="dh",
                                                color_mapper=overlay, global_alpha=0.6))
                fig.add_tools(HoverTool(renderers=[image],
                                        tooltips=[(spec.value, "@image{0.000}"), ("mm", "$x{0.0}, $y{0.0}")]))
                if spec.boxes:
                    boxes = ColumnDataSource({k: [] for k in ("left", "bottom", "right", "top", "color")})
                    box_sources.append(boxes)
                    fig.add_glyph(boxes, Quad(left="left", right="right", bottom="bottom", top="top",
                                              fill_alpha=0, line_color="color", line_width=2))
                if i == spec.n - 1 and spec.bar:
                    bar = ColorBar(color_mapper=mapper, title=spec.bar, width=12)
                    fig.add_layout(bar, "right")
                    self.bars.append(bar)
                sources.append(source)
                figures.append(fig)
            self.mappers.append(mapper)
            self.sources.append(sources)
            self.box_sources.append(box_sources)
            self.figures.append(figures)
        self.model = column(*(row(*figs) for figs in self.figures), css_classes=[css_class])

    def set_frame(self, geom: display.DisplayGeometry) -> None:
        """Every figure shows ``geom``'s frame with its physical aspect."""
        left, bottom, right, top = geom.bounds
        self.x_range.update(start=left, end=right)
        self.y_range.update(start=bottom, end=top)
        width, height = frame_size(geom, self.size)
        for figs in self.figures:
            for fig in figs:
                fig.update(frame_width=width, frame_height=height)

    def set_row(self, r: int, arrays: Sequence[np.ndarray], titles: Sequence[str], geom: display.DisplayGeometry,
                low: float | None = None, high: float | None = None, palette: Sequence[str] | None = None,
                bar: str | None = None, overlays: Sequence[np.ndarray] | None = None) -> None:
        """Row ``r`` shows ``arrays`` (display arrays) under ``titles``, with ``overlays`` (display arrays of
        codes) over them; its scale, palette, bar title change when given."""
        left, bottom, right, top = geom.bounds
        overlays = [None] * len(arrays) if overlays is None else overlays
        for source, fig, array, over, title in zip(self.sources[r], self.figures[r], arrays, overlays, titles,
                                                   strict=True):
            source.data = {"image": [_bokeh_image(array)], "overlay": [EMPTY if over is None else _bokeh_image(over)],
                           "x": [left], "y": [bottom], "dw": [right - left], "dh": [top - bottom]}
            fig.title.text = title
        mapper = self.mappers[r]
        changes = {k: v for k, v in (("low", low), ("high", high)) if v is not None}
        if palette is not None:
            changes["palette"] = list(palette)
        if changes:
            mapper.update(**changes)
        if bar is not None:
            self.bars[r].title = bar

    def set_boxes(self, r: int, boxes: Sequence[tuple], color: str = "#ffd700", index: int | None = None) -> None:
        """The crop boxes of row ``r``'s figure ``index`` (every figure of the row when None),
        ``(x0, y0, x1, y1[, round, colour])`` in display mm (``color`` for boxes without their own)."""
        sources = self.box_sources[r] if index is None else [self.box_sources[r][index]]
        for source in sources:
            source.data = {"left": [b[0] for b in boxes], "bottom": [b[1] for b in boxes],
                           "right": [b[2] for b in boxes], "top": [b[3] for b in boxes],
                           "color": [b[5] if len(b) > 5 else color for b in boxes]}


def _bokeh_image(array: np.ndarray) -> np.ndarray:
    """A display array (row 0 at the top) as Bokeh draws images (row 0 at the bottom), float32, NaN as 0."""
    return np.ascontiguousarray(np.flipud(np.nan_to_num(np.asarray(array, dtype=np.float32), nan=0.0)))
