"""Matplotlib figures of cases shared by the notebooks (training curves, rounds, saliency, comparisons);
the evaluation's (convergence, DSC per method) are in :mod:`rstn_core.evaluation.result_figures`.

Every function returns a :class:`matplotlib.figure.Figure` built with the object-oriented API (no
pyplot state, no ``show``), so notebooks display it and tests count its axes and images.

Display frame: a view slice ``(H, W)`` from :func:`rstn_core.slicing.to_view` is shown radiologically
(axial: anterior up, the patient's right on the left; coronal/sagittal: superior up) by
``display = slice[::-1, ::-1].T`` of shape ``(W, H)``, the same rule as the app; a crop box in
view-slice pixels goes through :func:`box_to_display`. CT is shown in the abdomen window
(W350 L40); masks and probabilities are arrays in the canonical ``(X, Y, Z)`` frame.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

# the evaluation's figures live in result_figures; notebooks import them from here too
from rstn_core.evaluation.result_figures import (  # noqa: F401
    METHOD_COLORS,
    convergence_curves,
    dsc_boxplot,
    mean_curves,
    paired_scatter,
    write_figures,
)
from rstn_core.slicing import to_display, to_view
from rstn_core.types import BBox, View

HU_WINDOW = (-135.0, 215.0)  # abdomen W350 L40
TRUTH_COLOR, PRED_COLOR, BOX_COLOR = "#2ca02c", "#d62728", "#ffd700"


# ----------------------------------------------------------------------------- display frame
def box_to_display(box: BBox, view_hw: tuple[int, int]) -> tuple[float, float, float, float]:
    """A view-slice box -> ``(left, top, width, height)`` in display pixel coordinates (imshow frame)."""
    h, w = view_hw
    return (h - box.y1 - 0.5, w - box.x1 - 0.5, float(box.height), float(box.width))


def _slice(volume: np.ndarray, view: View, index: int) -> np.ndarray:
    return to_display(to_view(volume, view)[index])


def _aspect(spacing: Sequence[float], view: View) -> float:
    rest = [float(s) for i, s in enumerate(spacing) if i != view.axis]
    return rest[1] / rest[0]  # display rows run along W, columns along H


def _contour(ax, mask2d: np.ndarray, color: str, **kw: Any) -> None:
    if mask2d.any() and not mask2d.all():
        ax.contour(mask2d.astype(np.float32), levels=[0.5], colors=[color], linewidths=1.2, **kw)


def largest_area_slice(mask: np.ndarray, view: View | str = View.AXIAL) -> int:
    """Index of the ``view`` slice with the most foreground voxels of the (X, Y, Z) ``mask`` (middle if empty)."""
    stack = to_view(np.asarray(mask, dtype=bool), View.parse(view))
    areas = stack.reshape(stack.shape[0], -1).sum(axis=1)
    return int(np.argmax(areas)) if areas.any() else stack.shape[0] // 2


def per_slice_dsc(truth: np.ndarray, pred: np.ndarray, view: View | str = View.AXIAL) -> np.ndarray:
    """(L,) DSC of ``pred`` vs ``truth`` on each ``view`` slice; NaN where both are empty."""
    t = to_view(np.asarray(truth, dtype=bool), View.parse(view))
    p = to_view(np.asarray(pred, dtype=bool), View.parse(view))
    inter = (t & p).reshape(t.shape[0], -1).sum(axis=1)
    total = t.reshape(t.shape[0], -1).sum(axis=1) + p.reshape(p.shape[0], -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 2.0 * inter / total, np.nan)


def largest_difference_slice(truth: np.ndarray, mask_a: np.ndarray, mask_b: np.ndarray,
                             view: View | str = View.AXIAL) -> int:
    """The ``view`` slice where method b's per-slice DSC beats method a's the most (``|b - a|`` if b never
    wins), among the slices holding the target (all slices if the target is empty); ties go to the
    slice with the larger target area."""
    da, db = per_slice_dsc(truth, mask_a, view), per_slice_dsc(truth, mask_b, view)
    diff = np.nan_to_num(db, nan=0.0) - np.nan_to_num(da, nan=0.0)
    stack = to_view(np.asarray(truth, dtype=bool), View.parse(view))
    area = stack.reshape(stack.shape[0], -1).sum(axis=1)
    candidates = np.flatnonzero(area > 0) if area.any() else np.arange(len(area))
    score = diff if (diff[candidates] > 0).any() else np.abs(diff)
    order = np.lexsort((area[candidates], score[candidates]))  # by score, then area
    return int(candidates[order[-1]])


# ----------------------------------------------------------------------------- training
def training_curves(metrics: str | Path | Sequence[Mapping[str, Any]], title: str = "") -> Figure:
    """Loss terms (soft-DSC, ``loss_0`` coarse, ``loss_t`` fine) against the global step, stages marked.

    ``metrics``: a ``metrics.jsonl`` path or its records (:func:`rstn_core.training.metrics_log.read_metrics`).
    One axes.
    """
    if isinstance(metrics, str | Path):
        from rstn_core.training.metrics_log import read_metrics

        metrics = read_metrics(metrics)
    records = list(metrics)
    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    keys = sorted({k for r in records for k in r if k.startswith("loss")})
    for key in keys:
        pts = [(r["step"], r[key]) for r in records if key in r]
        ax.plot(*zip(*pts, strict=True), label=key, lw=1.6 if key == "loss" else 0.9)
    for i, r in enumerate(records):
        if i == 0 or r["stage"] != records[i - 1]["stage"]:
            ax.axvline(r["step"], color="0.6", lw=0.8, ls=":")
            ax.text(r["step"], 1.01, f" {r['stage']}", transform=ax.get_xaxis_transform(), fontsize=8)
    ax.set(xlabel="iteration", ylabel="soft-DSC loss", ylim=(0, 1.05), title=title)
    if keys:
        ax.legend(loc="lower left", fontsize=8, ncols=min(len(keys), 4))
    return fig


# ----------------------------------------------------------------------------- one case
def round_panels(hu: np.ndarray, truth: np.ndarray | None, states: Sequence[Any], view: View | str = View.AXIAL,
                 slice_index: int | None = None, spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> Figure:
    """One panel per round: the CT ``view`` slice, truth (green) and Z_t (red) contours, and the crop box
    (yellow dashed) the fine net used on this slice in that round.

    ``hu``: (X, Y, Z) HU. ``truth``: (X, Y, Z) bool or ``None``. ``states``: RoundStates of one run.
    One axes (one image) per state.
    """
    view = View.parse(view)
    if slice_index is None:
        slice_index = largest_area_slice(truth if truth is not None else states[-1].mask, view)
    view_hw = to_view(hu, view).shape[1:]
    fig = Figure(figsize=(2.6 * len(states), 3.0), layout="constrained")
    axes = fig.subplots(1, len(states), squeeze=False)[0]
    for ax, state in zip(axes, states, strict=True):
        ax.imshow(_slice(hu, view, slice_index), cmap="gray", vmin=HU_WINDOW[0], vmax=HU_WINDOW[1],
                  aspect=_aspect(spacing, view), interpolation="nearest")
        if truth is not None:
            _contour(ax, _slice(truth, view, slice_index), TRUTH_COLOR)
        _contour(ax, _slice(state.mask, view, slice_index), PRED_COLOR)
        box = state.boxes.get(view, {}).get(slice_index)
        if box is not None:
            left, top, width, height = box_to_display(box, view_hw)
            ax.add_patch(Rectangle((left, top), width, height, fill=False, ec=BOX_COLOR, ls="--", lw=1.2))
        dsc = "" if state.dsc_vs_truth is None else f"  DSC {100 * state.dsc_vs_truth:.1f}%"
        ax.set_title(f"round {state.round}{dsc}", fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"{view.value} slice {slice_index}: truth green, Z_t red, crop box yellow", fontsize=9)
    return fig


def saliency_figure(saliency: Any, truth_window: np.ndarray | None = None) -> Figure:
    """The paper's Figure 5: for the three channels (slices j-1, j, j+1) of one window, the input X,
    the saliency weights g(P) and the transformed input X ⊙ g(P) that the fine net sees.

    ``saliency``: a :class:`rstn_core.inference.state.SaliencyView` (``image``, ``weights``,
    ``transformed``: (3, H, W); ``box`` or ``None``). ``truth_window``: optional (3, H, W) bool, drawn
    as a contour. 3 x 3 axes, one image each; the crop box is drawn on every panel.
    """
    rows = ("slice j-1", "slice j", "slice j+1")
    # diverging around 1 (= "no change"), symmetric, so small learned deviations stay visible
    spread = max(0.02, float(np.max(np.abs(np.asarray(saliency.weights, dtype=np.float64) - 1.0))))
    cols = (("input X", saliency.image, "gray", (0.0, 1.0)),
            ("saliency g(P) (1 = no change)", saliency.weights, "RdBu_r", (1.0 - spread, 1.0 + spread)),
            ("X ⊙ g(P)", saliency.transformed, "gray", (0.0, max(1.0, float(np.max(saliency.transformed))))))
    view_hw = saliency.image.shape[1:]
    fig = Figure(figsize=(8.4, 8.0), layout="constrained")
    axes = fig.subplots(3, 3)
    for c, (name, array, cmap, (vmin, vmax)) in enumerate(cols):
        for r in range(3):
            ax = axes[r, c]
            im = ax.imshow(to_display(array[r]), cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            if truth_window is not None:
                _contour(ax, to_display(truth_window[r]), TRUTH_COLOR)
            if saliency.box is not None:
                left, top, width, height = box_to_display(saliency.box, view_hw)
                ax.add_patch(Rectangle((left, top), width, height, fill=False, ec=BOX_COLOR, ls="--", lw=1.0))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=10)
            if c == 0:
                ax.set_ylabel(rows[r], fontsize=10)
        fig.colorbar(im, ax=axes[:, c], location="bottom", shrink=0.8)
    fig.suptitle(f"{saliency.view.value} window centred on slice {saliency.centre}", fontsize=10)
    return fig


def comparison_panels(hu: np.ndarray, truth: np.ndarray, masks: Mapping[str, np.ndarray],
                      view: View | str = View.AXIAL, slice_index: int | None = None,
                      spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> Figure:
    """The paper's Figure 2: the CT with the truth, then each method's mask on the same slice with its
    slice DSC. ``masks``: method name -> (X, Y, Z) bool. 1 + len(masks) axes, one image each."""
    view = View.parse(view)
    if slice_index is None:
        slice_index = largest_area_slice(truth, view)
    t2 = _slice(truth, view, slice_index)
    fig = Figure(figsize=(3.0 * (1 + len(masks)), 3.2), layout="constrained")
    axes = fig.subplots(1, 1 + len(masks), squeeze=False)[0]
    panels = [("ground truth", None), *masks.items()]
    for ax, (name, mask) in zip(axes, panels, strict=True):
        ax.imshow(_slice(hu, view, slice_index), cmap="gray", vmin=HU_WINDOW[0], vmax=HU_WINDOW[1],
                  aspect=_aspect(spacing, view), interpolation="nearest")
        _contour(ax, t2, TRUTH_COLOR)
        title = name
        if mask is not None:
            m2 = _slice(mask, view, slice_index)
            _contour(ax, m2, METHOD_COLORS.get(name.lower(), PRED_COLOR))
            total = t2.sum() + m2.sum()
            d = 2.0 * (t2 & m2).sum() / total if total else float("nan")
            title = f"{name}: slice DSC {100 * d:.1f}%"
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    fig.suptitle(f"{view.value} slice {slice_index} (truth green)", fontsize=9)
    return fig
