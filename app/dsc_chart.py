"""The convergence chart beside the viewer as a small inline SVG (no Panel, no Bokeh): one HTML string per
round instead of a Bokeh figure of ~70 models per session.

``dsc_chart_svg(rounds, stop_dsc)``: inter-round DSC (solid) and DSC vs truth (dashed) per round, the stop
threshold (grey dashes), a legend; ``dsc_comparison_svg({name: rounds}, stop_dsc)``: the same for several
runs (the Compare tab), the legend beside the frame. The points come from
:func:`rstn_core.inference.summary.curve_points` (two empty masks give no inter-round point). Each point
carries a ``<title>`` (the browser's tooltip).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from rstn_core.inference.summary import curve_points

from . import display

WIDTH, HEIGHT = 520, 330
LEFT, RIGHT, TOP, BOTTOM = 54, 16, 34, 48  # the frame's margins (px)
LEGEND_WIDTH = 240  # px beside the frame for the legend of a comparison


def _scale(last: int) -> tuple[Any, Any]:
    frame_w, frame_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    x0, x1 = -0.3, max(last, 1) + 0.3

    def x(value: float) -> float:
        return LEFT + (value - x0) / (x1 - x0) * frame_w

    def y(value: float) -> float:
        return TOP + (1.02 - value) / 1.02 * frame_h

    return x, y


def _axes(last: int, x, y) -> list[str]:
    parts = [f"<rect x='{LEFT}' y='{TOP}' width='{WIDTH - LEFT - RIGHT}' height='{HEIGHT - TOP - BOTTOM}' "
             "fill='white' stroke='#ccc'/>"]
    for tick in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        parts.append(f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y(tick):.1f}' y2='{y(tick):.1f}' stroke='#eee'/>"
                     f"<text x='{LEFT - 6}' y='{y(tick) + 4:.1f}' text-anchor='end'>{tick:.1f}</text>")
    step = max(1, (last + 1) // 12)  # at most ~12 labels
    for r in range(0, max(last, 1) + 1, step):
        parts.append(f"<text x='{x(r):.1f}' y='{HEIGHT - BOTTOM + 16}' text-anchor='middle'>{r}</text>")
    parts.append(f"<text x='{(LEFT + WIDTH - RIGHT) / 2:.0f}' y='{HEIGHT - 12}' text-anchor='middle'>round</text>"
                 f"<text transform='translate(14 {(TOP + HEIGHT - BOTTOM) / 2:.0f}) rotate(-90)' "
                 "text-anchor='middle'>DSC</text>")
    return parts


def _series(points: list[tuple[int, float]], color: str, dash: str, label: str, x, y) -> list[str]:
    if not points:
        return []
    path = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points)
    parts = [f"<polyline points='{path}' fill='none' stroke='{color}' stroke-width='2' stroke-dasharray='{dash}'/>"]
    for r, v in points:
        parts.append(f"<circle cx='{x(r):.1f}' cy='{y(v):.1f}' r='4' fill='{color}' data-round='{r}'>"
                     f"<title>{html.escape(label)}: round {r}, {v:.4f}</title></circle>")
    return parts


def dsc_chart_svg(rounds: Sequence[Any], stop_dsc: float, points: dict | None = None) -> str:
    """The chart as one ``<svg>`` element (class ``dsc-chart``; ``data-points`` = inter-round points);
    ``points``: ``curve_points(rounds)`` when the caller has it already."""
    points = curve_points(rounds) if points is None else points
    last = max((int(r.round) for r in rounds), default=1)
    return _chart([("", points)], last, stop_dsc, legend_beside=False)


def dsc_comparison_svg(series: dict[str, Sequence[Any]], stop_dsc: float) -> str:
    """Both curves of each named run (``{name: rounds}``), each run in its own colours, the legend beside the
    frame (never over a curve); ``data-points`` counts every run's inter-round points."""
    last = max((int(r.round) for rounds in series.values() for r in rounds), default=1)
    return _chart([(name, curve_points(rounds)) for name, rounds in series.items()], last, stop_dsc,
                  legend_beside=True)


def _chart(runs: list[tuple[str, dict]], last: int, stop_dsc: float, legend_beside: bool) -> str:
    x, y = _scale(last)
    title = html.escape(f"DSC per round (grey dashes: stop at {stop_dsc})")
    entries = []
    for i, (name, points) in enumerate(runs):
        inter_color, truth_color = display.series_colors(i)
        prefix = f"{name}: " if name else ""
        entries += [(points["inter"], f"{prefix}inter-round DSC", inter_color, "none"),
                    (points["truth"], f"{prefix}DSC vs truth", truth_color, "6 4")]
    width = WIDTH + (LEGEND_WIDTH if legend_beside else 0)
    inter_points = sum(len(points["inter"]) for _, points in runs)
    parts = [f"<svg class='dsc-chart' xmlns='http://www.w3.org/2000/svg' width='{width}' height='{HEIGHT}' "
             f"viewBox='0 0 {width} {HEIGHT}' font-family='sans-serif' font-size='11' "
             f"data-points='{inter_points}' role='img' aria-label='{title}'>",
             f"<text x='{LEFT}' y='18' font-size='13' font-weight='bold'>{title}</text>", *_axes(last, x, y),
             f"<line x1='{LEFT}' x2='{WIDTH - RIGHT}' y1='{y(stop_dsc):.1f}' y2='{y(stop_dsc):.1f}' stroke='grey' "
             "stroke-dasharray='5 4'/>"]
    for pts, label, color, dash in entries:
        parts += _series(pts, color, dash, label, x, y)
    if legend_beside:
        lx, ly, box_w = WIDTH + 6, TOP + 12, LEGEND_WIDTH - 12
    else:
        lx, ly, box_w = WIDTH - RIGHT - 150, HEIGHT - BOTTOM - 16 * len(entries) - 8, 150
    parts.append(f"<rect class='dsc-legend' x='{lx - 6}' y='{ly - 12}' width='{box_w}' "
                 f"height='{16 * len(entries) + 6}' fill='white' stroke='#ddd'/>")
    for i, (_, label, color, dash) in enumerate(entries):
        yy = ly + i * 16
        parts.append(f"<line x1='{lx}' x2='{lx + 24}' y1='{yy - 4}' y2='{yy - 4}' stroke='{color}' stroke-width='2' "
                     f"stroke-dasharray='{dash}'/><text x='{lx + 30}' y='{yy}'>{html.escape(label)}</text>")
    parts.append("</svg>")
    return "".join(parts)
