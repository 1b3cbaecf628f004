"""The convergence chart beside the viewer as one Bokeh figure built once per session: each round
only replaces the points of its two series (no figure is rebuilt, no HoloViews plot per round)."""

from __future__ import annotations

import panel as pn
import param
from bokeh.models import ColumnDataSource, FixedTicker, Legend, LegendItem, Range1d, Span
from bokeh.plotting import figure

from rstn_core.inference.summary import curve_points

from . import display
from .doc_push import DocPush
from .state import SessionState


class DscChart(pn.viewable.Viewer):
    """Inter-round DSC (solid) and DSC vs truth (dashed) per round, with the stop threshold (grey dashes)."""

    state = param.ClassSelector(class_=SessionState)

    def __init__(self, **params) -> None:
        super().__init__(**params)
        stop = self.state.stop_dsc()
        fig = figure(frame_width=420, frame_height=240, x_range=Range1d(-0.3, 1.3), y_range=Range1d(0, 1.02),
                     toolbar_location=None, x_axis_label="round", y_axis_label="DSC", width=520, height=330,
                     title=f"DSC per round (grey dashes: stop at {stop})", css_classes=["dsc-chart"])
        fig.xaxis.ticker = FixedTicker(ticks=[0, 1])
        self.span = Span(location=stop, dimension="width", line_color="grey", line_dash="dashed", line_width=1)
        fig.add_layout(self.span)
        inter_color, truth_color = display.series_colors(0)
        self.sources = {key: ColumnDataSource({"round": [], "dsc": []}) for key in ("inter", "truth")}
        items = []
        for key, label, color, dash in (("inter", "inter-round DSC", inter_color, "solid"),
                                        ("truth", "DSC vs truth", truth_color, "dashed")):
            line = fig.line("round", "dsc", source=self.sources[key], color=color, line_dash=dash, line_width=2)
            dots = fig.scatter("round", "dsc", source=self.sources[key], color=color, size=7)
            items.append(LegendItem(label=label, renderers=[line, dots]))
        fig.add_layout(Legend(items=items, location="bottom_right"))
        self.figure = fig
        self._push = DocPush(self._flush)
        self.state.param.watch(lambda *e: self._push.mark("rounds"), ["rounds"])
        self._push.mark("rounds")

    def _flush(self, dirty: set[str]) -> None:
        rounds = self.state.rounds
        points = curve_points(rounds)
        for key, source in self.sources.items():
            pts = points[key]
            source.data = {"round": [p[0] for p in pts], "dsc": [p[1] for p in pts]}
        stop = self.state.stop_dsc()  # the model may have changed
        self.span.location = stop
        self.figure.title.text = f"DSC per round (grey dashes: stop at {stop})"
        last = max(max((r.round for r in rounds), default=1), 1)
        self.figure.x_range.update(start=-0.3, end=last + 0.3)
        self.figure.xaxis.ticker = FixedTicker(ticks=list(range(last + 1)))

    def __panel__(self):
        return pn.pane.Bokeh(self.figure)
