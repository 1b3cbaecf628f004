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

from rstn_core.types import ALL_VIEWS, View

from . import display

ERROR_CMAP = ListedColormap([display.ERROR_COLORS[display.TP], display.ERROR_COLORS[display.FP],
                             display.ERROR_COLORS[display.FN]])
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:1200px}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}caption{font-weight:bold;text-align:left}img{max-width:100%}
.legend span{margin-right:12px}pre{background:#f6f6f6;padding:8px;overflow:auto}
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


def saliency_figure(saliency: Any, case, view: View) -> str:
    """The three weight channels (diverging around 1) above the transformed input (PNG data URI)."""
    geom = display.geometry(case.image.shape, case.image.spacing, view)
    extent = (geom.bounds[0], geom.bounds[2], geom.bounds[1], geom.bounds[3])
    lo, hi = display.diverging_clim(saliency.weights)
    fig = Figure(figsize=(9, 6), dpi=80)
    axes = fig.subplots(2, 3, squeeze=False)
    for c in range(3):
        im = axes[0][c].imshow(display.to_display(saliency.weights[c]), cmap="RdBu_r", vmin=lo, vmax=hi,
                               extent=extent, interpolation="nearest")
        axes[0][c].set_title(f"g(P) channel {c + 1}", fontsize=9)
        axes[1][c].imshow(display.to_display(saliency.transformed[c]), cmap="gray", vmin=0, vmax=1, extent=extent,
                          interpolation="nearest")
        axes[1][c].set_title(f"X⊙g(P) channel {c + 1}", fontsize=9)
        if saliency.box is not None:
            x0, y0, x1, y1 = display.box_to_display(saliency.box, geom)
            axes[1][c].add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#ffd700"))
        for row in range(2):
            axes[row][c].set_xticks([])
            axes[row][c].set_yticks([])
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="weight (1 = no change)")
    return _png(fig)


def curves_figure(series: dict[str, Sequence[Any]], stop_dsc: float) -> str:
    """Inter-round DSC and DSC vs truth per round for each method (PNG data URI)."""
    fig = Figure(figsize=(7, 3.4), dpi=80)
    ax = fig.subplots()
    ax.axhline(stop_dsc, color="grey", linestyle="--", linewidth=1, label=f"stop threshold {stop_dsc}")
    for style, (name, rounds) in zip(("-", "-."), series.items()):
        inter = [(r.round, r.inter_round_dsc) for r in rounds if r.inter_round_dsc is not None]
        truth = [(r.round, r.dsc_vs_truth) for r in rounds if r.dsc_vs_truth is not None]
        if inter:
            ax.plot(*zip(*inter), style, marker="o", color="#1f77b4", label=f"{name}: inter-round DSC")
        if truth:
            ax.plot(*zip(*truth), style, marker="s", color="#d62728", label=f"{name}: DSC vs truth")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("DSC")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def _table(rounds: Sequence[Any], caption: str) -> str:
    rows = []
    for r in rounds:
        inter = "–" if r.inter_round_dsc is None else f"{r.inter_round_dsc:.4f}"
        truth = "–" if r.dsc_vs_truth is None else f"{r.dsc_vs_truth:.4f}"
        windows = sum(len(b) for b in r.boxes.values())
        rows.append(f"<tr><td>{r.round}</td><td>{inter}</td><td>{truth}</td><td>{int(np.count_nonzero(r.mask))}</td>"
                    f"<td>{windows}</td><td>{r.seconds:.2f}</td><td>{html.escape(r.stopped or '')}</td></tr>")
    return (f"<table data-testid='report-rounds'><caption>{html.escape(caption)}</caption><tr><th>round</th>"
            "<th>inter-round DSC</th><th>DSC vs truth</th><th>voxels</th><th>fine windows</th><th>seconds</th>"
            f"<th>stopped</th></tr>{''.join(rows)}</table>")


def build_report(case, rounds: Sequence[Any], *, slices: dict[View, int], clim: tuple[float, float],
                 settings: dict, method: str = "RSTN", saliency: Any = None, saliency_view: View = View.AXIAL,
                 baseline: Sequence[Any] = (), baseline_name: str = "C2F", stop_dsc: float = 0.99) -> str:
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
        last = rounds[-1]
        ending = (f"stopped: {html.escape(last.stopped)}; final" if last.stopped
                  else "not stopped yet (stepped by hand); latest")
        dsc_text = "–" if last.dsc_vs_truth is None else f"{last.dsc_vs_truth:.4f}"
        parts.append(f"<h2>Summary</h2><p data-testid='report-summary'>{html.escape(method)}: {len(rounds)} round(s), "
                     f"{ending} DSC vs truth: {dsc_text}.</p>")
        parts.append(_table(rounds, method))
        if baseline:
            parts.append(_table(baseline, baseline_name))
        parts.append("<h2>DSC per round</h2>")
        series = {method: rounds, **({baseline_name: baseline} if baseline else {})}
        parts.append(_img(curves_figure(series, stop_dsc), "DSC curves", "report-curves"))
    else:
        parts.append("<p>No rounds were run; the images show the CT and the ground truth only.</p>")
    parts.append("<h2>Views at the chosen slices, every round</h2>")
    parts.append(_img(rounds_figure(case, rounds, slices, clim), "rounds", "report-rounds-figure"))
    if saliency is not None:
        parts.append(f"<h2>Saliency transformation ({saliency_view.value}, window centred on slice "
                     f"{saliency.centre})</h2>")
        parts.append(_img(saliency_figure(saliency, case, saliency_view), "saliency channels", "report-saliency"))
    if baseline:
        parts.append(f"<h2>{html.escape(baseline_name)} (baseline), every round</h2>")
        parts.append(_img(rounds_figure(case, baseline, slices, clim), "baseline rounds", "report-baseline"))
    parts.append("<h2>Settings</h2><pre data-testid='report-settings'>"
                 f"{html.escape(json.dumps(settings, indent=2, default=str))}</pre></body></html>")
    return "".join(parts)


def report_for_session(state) -> str:
    """Collect what a :class:`app.state.SessionState` shows into :func:`build_report` arguments."""
    if state.case is None:
        raise ValueError("no case loaded")
    case = state.case
    current = View.parse(state.view)
    target = state.current_mask() if state.rounds else case.label
    slices = {}
    for view in ALL_VIEWS:
        if view == current:
            slices[view] = int(state.slice_index)
        elif target is not None:
            slices[view] = display.largest_slice(target, view)
        else:
            slices[view] = display.num_slices(case.image.shape, view) // 2
    saliency = None
    if len(state.rounds) > 1:
        saliency = state.saliency(len(state.rounds) - 1, current.value, slices[current])
    choice = state.choice()
    stop = state.stop_dsc()
    baseline_choice = state.choice(state.compare_model) if state.compare_rounds else None
    return build_report(case, state.rounds, slices=slices, clim=state.display.clim(), settings=state.settings(),
                        method=choice.method.upper() if choice else "model", saliency=saliency,
                        saliency_view=current, baseline=state.compare_rounds,
                        baseline_name=baseline_choice.method.upper() if baseline_choice else "baseline",
                        stop_dsc=stop)
