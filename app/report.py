"""Self-contained HTML report of a case: static PNG images (base64) and plain HTML, no scripts.

The file opens from ``file://`` without a network or a server. Images are drawn with matplotlib's
object API (``Figure`` + Agg canvas, thread-safe, no pyplot state). No Panel and no torch here: the
inputs are the session's plain arrays and records.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from rstn_core.inference.summary import curve_points, ending
from rstn_core.types import ALL_VIEWS, View

from . import display
from .tables import rounds_table_html

ERROR_CMAP = ListedColormap(display.ERROR_CMAP)
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}caption{font-weight:bold;text-align:left}img{max-width:100%}
.legend span{margin-right:12px}
pre{background:#f6f6f6;padding:8px;overflow:auto;white-space:pre-wrap;overflow-wrap:anywhere}
"""


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buffer)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _img(src: str, alt: str, test_id: str = "") -> str:
    tid = f" data-testid='{test_id}'" if test_id else ""
    return f"<img src='{src}' alt='{html.escape(alt)}'{tid}>"


def _draw_slice(ax, case, view: View, index: int, clim, mask: np.ndarray | None, boxes: Sequence[tuple]) -> None:
    geom = display.geometry(case.image.shape, case.image.spacing, view)
    extent = (geom.bounds[0], geom.bounds[2], geom.bounds[1], geom.bounds[3])  # left, right, bottom, top
    ax.imshow(display.display_slice(case.image.data, view, index), cmap="gray", vmin=clim[0], vmax=clim[1],
              extent=extent, interpolation="nearest")
    if mask is not None:
        pred = display.display_slice(mask, view, index)
        if case.label is not None:
            layer = display.error_layer(pred, display.display_slice(case.label, view, index))
            ax.imshow(np.ma.masked_invalid(layer), cmap=ERROR_CMAP, vmin=0.5, vmax=3.5, alpha=0.6, extent=extent,
                      interpolation="nearest")
        else:
            ax.imshow(np.ma.masked_invalid(display.mask_layer(pred)), cmap=ListedColormap(["#e31a1c"]), alpha=0.6,
                      extent=extent, interpolation="nearest")
    elif case.label is not None:
        truth = display.mask_layer(display.contour(display.display_slice(case.label, view, index)))
        ax.imshow(np.ma.masked_invalid(truth), cmap=ListedColormap(["#ffd700"]), extent=extent,
                  interpolation="nearest")
    for x0, y0, x1, y1, color in boxes:
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=color, linewidth=1.2))
    ax.set_xticks([])
    ax.set_yticks([])


def rounds_figure(case, rounds: Sequence[Any], slices: dict[View, int], clim) -> str:
    """One row per round, one column per view: CT + TP/FP/FN + this round's crop box (PNG data URI)."""
    n = max(len(rounds), 1)
    fig = Figure(figsize=(9, 2.9 * n + 0.4), dpi=80)
    axes = fig.subplots(n, 3, squeeze=False)
    for r, state in enumerate(rounds or [None]):
        for c, view in enumerate(ALL_VIEWS):
            ax = axes[r][c]
            index = slices[view]
            boxes = []
            if state is not None:
                box = state.boxes.get(view, {}).get(index)
                if box is not None:
                    geom = display.geometry(case.image.shape, case.image.spacing, view)
                    boxes.append((*display.box_to_display(box, geom), display.round_color(r, n)))
            _draw_slice(ax, case, view, index, clim, None if state is None else state.mask, boxes)
            title = f"{view.value} {index}"
            if state is not None:
                title = f"round {state.round} · " + title
            ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _png(fig)


def saliency_figure(saliency: Any, case, view: View, span: float = 0.1, difference_span: float = 0.05) -> str:
    """g(P) (fixed scale 1 ± span) above the difference X⊙g(P) − X (± difference_span), three channels."""
    geom = display.geometry(case.image.shape, case.image.spacing, view)
    extent = (geom.bounds[0], geom.bounds[2], geom.bounds[1], geom.bounds[3])
    fig = Figure(figsize=(9, 6), dpi=80)
    axes = fig.subplots(2, 3, squeeze=False)
    for c, name in enumerate(("j−1", "j", "j+1")):
        top = axes[0][c].imshow(display.to_display(saliency.weights[c]), cmap="RdBu_r", vmin=1 - span,
                                vmax=1 + span, extent=extent, interpolation="nearest")
        axes[0][c].set_title(f"g(P), slice {name}", fontsize=9)
        diff = display.to_display(saliency.transformed[c] - saliency.image[c])
        low = axes[1][c].imshow(diff, cmap="RdBu_r", vmin=-difference_span, vmax=difference_span, extent=extent,
                                interpolation="nearest")
        axes[1][c].set_title(f"X⊙g(P) − X, slice {name}", fontsize=9)
        if saliency.box is not None:
            x0, y0, x1, y1 = display.box_to_display(saliency.box, geom)
            axes[1][c].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#ffd700"))
        for row in range(2):
            axes[row][c].set_xticks([])
            axes[row][c].set_yticks([])
    fig.colorbar(top, ax=axes[0].tolist(), shrink=0.8, label="weight (1 = no change)")
    fig.colorbar(low, ax=axes[1].tolist(), shrink=0.8, label="change of the input")
    return _png(fig)


def curves_plot(series: dict[str, Sequence[Any]], stop_dsc: float) -> Figure:
    """Inter-round DSC and DSC vs truth per round for each method, each in its own colours; the legend
    beside the axes."""
    fig = Figure(figsize=(9, 3.4), dpi=80)
    ax = fig.subplots()
    ax.axhline(stop_dsc, color="grey", linestyle="--", linewidth=1, label=f"stop threshold {stop_dsc}")
    for i, (name, rounds) in enumerate(series.items()):
        points = curve_points(rounds)
        inter_color, truth_color = display.series_colors(i)
        if points["inter"]:
            ax.plot(*zip(*points["inter"]), "-", marker="o", color=inter_color, label=f"{name}: inter-round DSC")
        if points["truth"]:
            ax.plot(*zip(*points["truth"]), "--", marker="s", color=truth_color, label=f"{name}: DSC vs truth")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("DSC")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes, never over a curve
    fig.tight_layout()
    return fig


def _method_section(name: str, rounds: Sequence[Any], test_id: str) -> str:
    return (f"<p data-testid='{test_id}'><b>{html.escape(name)}</b>: {html.escape(ending(rounds))}.</p>"
            + rounds_table_html(rounds, f"{test_id}-rounds", name))


def _saliency_section(saliencies: Sequence[tuple[int, Any]], case, view: View, spans: tuple[float, float]) -> str:
    parts = [f"<h2>Saliency transformation, every round ({view.value}, at the organ's slice)</h2>",
             "<p>Each fine round multiplies the three input slices X by weights g(P) from the previous round's "
             "probability (white = 1 = unchanged). Fixed colour scales: g(P) 1 ± "
             f"{spans[0]:g}, difference ± {spans[1]:g}.</p>"]
    for round_index, sal in saliencies:
        parts.append(f"<h3>Round {round_index}: weights from round {round_index - 1}, window centred on slice "
                     f"{sal.centre}</h3>")
        parts.append(_img(saliency_figure(sal, case, view, *spans), f"saliency round {round_index}",
                          f"report-saliency-{round_index}"))
    return "".join(parts)


def build_report(case, rounds: Sequence[Any], *, slices: dict[View, int], clim: tuple[float, float],
                 settings: dict, method: str = "RSTN", saliencies: Sequence[tuple[int, Any]] = (),
                 saliency_view: View = View.AXIAL, saliency_spans: tuple[float, float] = (0.1, 0.05),
                 baseline: Sequence[Any] = (), baseline_name: str = "C2F", stop_dsc: float = 0.99,
                 explanation: str = "") -> str:
    """The whole report as one HTML string (images inline, no scripts, no external links)."""
    shape = "×".join(str(s) for s in case.image.shape)
    spacing = ", ".join(f"{s:.2f}" for s in case.image.spacing)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>RSTN report · {html.escape(case.case_id)}</title><style>{CSS}</style></head><body>",
        f"<h1 data-testid='report-title'>RSTN Studio report · {html.escape(case.case_id)}</h1>",
        f"<p>Volume {shape} voxels, spacing {spacing} mm (R, A, S). Generated "
        f"{datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}. Radiological convention: the patient's "
        "right is on the left of each image.</p>",
        "<p class='legend'><span style='color:#2ca02c'>■ TP</span><span style='color:#ff7f0e'>■ FP</span>"
        "<span style='color:#1f77b4'>■ FN</span> boxes: crop box of the window centred on the shown slice</p>",
    ]
    if rounds:
        parts.append("<h2>Summary</h2>")
        if explanation:
            parts.append(f"<p data-testid='report-explanation'><b>Empty result.</b> {html.escape(explanation)}</p>")
        parts.append(_method_section(method, rounds, "report-summary"))
        if baseline:
            parts.append(_method_section(f"{baseline_name} (baseline)", baseline, "report-baseline-summary"))
        parts.append("<h2>DSC per round</h2>")
        series = {method: rounds, **({baseline_name: baseline} if baseline else {})}
        parts.append(_img(_png(curves_plot(series, stop_dsc)), "DSC curves", "report-curves"))
    else:
        parts.append("<p>No rounds were run; the images show the CT and the ground truth only.</p>")
    parts.append("<h2>Views at the organ's slices, every round</h2>")
    parts.append(_img(rounds_figure(case, rounds, slices, clim), "rounds", "report-rounds-figure"))
    if saliencies:
        parts.append(_saliency_section(saliencies, case, saliency_view, saliency_spans))
    if baseline:
        parts.append(f"<h2>{html.escape(baseline_name)} (baseline), every round</h2>")
        parts.append(_img(rounds_figure(case, baseline, slices, clim), "baseline rounds", "report-baseline"))
    settings_text = json.dumps(settings, indent=2, default=str, ensure_ascii=False)
    parts.append(f"<h2>Settings</h2><pre data-testid='report-settings'>{html.escape(settings_text)}</pre>"
                 "</body></html>")
    return "".join(parts)


def report_for_session(state) -> str:
    """Collect what a :class:`app.state.SessionState` holds into :func:`build_report` arguments.

    The images are taken at the organ's slice of every view (the truth's largest slice, else the
    latest mask's), not at whatever slice is on screen; saliency for every fine round of the main run."""
    if state.case is None:
        raise ValueError("no case loaded")
    if state.busy:
        raise ValueError("a run is going on: export the report when it has finished")
    case = state.case
    current = View.parse(state.view)
    slices = {view: state.organ_slice(view) for view in ALL_VIEWS}
    saliencies = []
    for r in range(1, len(state.rounds)):
        sal = state.saliency(r, current.value, slices[current])
        if sal is not None:
            saliencies.append((state.rounds[r].round, sal))
    choice = state.choice()
    baseline_choice = state.choice(state.compare_model) if state.compare_rounds else None
    d = state.display
    return build_report(case, state.rounds, slices=slices, clim=d.clim(), settings=state.settings(),
                        method=choice.method.upper() if choice else "model", saliencies=saliencies,
                        saliency_view=current, saliency_spans=(d.saliency_span, d.difference_span),
                        baseline=state.compare_rounds,
                        baseline_name=baseline_choice.method.upper() if baseline_choice else "baseline",
                        stop_dsc=state.stop_dsc(), explanation=state.explanation)
