"""A GUI-free summary of a run (a list of :class:`RoundState`): the rows of the rounds table, the
points of the DSC curves and a plain-words account of how the run ended.

One model for every place that shows a run (the app's table and chart, the HTML report), so the
rules live here once:

* the inter-round DSC of two empty masks is 1.0 by the Dice convention, but it means "nothing was
  found twice", not convergence: such a round has no inter-round DSC point and its row says so;
* ``dsc_grid`` ("input" or "model", when the engine records it) is carried beside every DSC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rstn_core.inference.convergence import StopReason

STOP_WORDS = {
    StopReason.CONVERGED: "converged: two successive masks agree (inter-round DSC at or above the threshold)",
    StopReason.MAX_ROUNDS: "stopped at the round limit",
    StopReason.EMPTY_COARSE: "the coarse stage found nothing, so there is nothing to refine",
    StopReason.EMPTY_MASK: "the mask became empty",
}


@dataclass(frozen=True)
class RoundRow:
    """One row of the rounds table (plain numbers; ``None`` where there is nothing to show)."""

    round: int
    inter_round_dsc: float | None  # None at round 0 and when both masks are empty
    both_empty: bool  # this round and the previous one found nothing
    dsc_vs_truth: float | None
    dsc_grid: str | None  # "input" / "model" when the engine says on which grid the DSC was taken
    voxels: int
    fine_windows: int
    seconds: float
    stopped: str | None


def round_rows(rounds: Sequence[Any]) -> list[RoundRow]:
    """Rows of the rounds table, one per :class:`RoundState`, in order."""
    rows: list[RoundRow] = []
    previous_voxels: int | None = None
    for state in rounds:
        voxels = int(state.voxels)
        both_empty = previous_voxels == 0 and voxels == 0
        inter = None if both_empty else state.inter_round_dsc
        rows.append(RoundRow(int(state.round), inter, both_empty, state.dsc_vs_truth,
                             getattr(state, "dsc_grid", None), voxels,
                             sum(len(b) for b in state.boxes.values()), float(state.seconds), state.stopped))
        previous_voxels = voxels
    return rows


def curve_points(rounds: Sequence[Any]) -> dict[str, list[tuple[int, float]]]:
    """``{"inter": [(round, DSC)], "truth": [(round, DSC)]}``; two empty masks give no inter point."""
    rows = round_rows(rounds)
    return {
        "inter": [(r.round, r.inter_round_dsc) for r in rows if r.inter_round_dsc is not None],
        "truth": [(r.round, r.dsc_vs_truth) for r in rows if r.dsc_vs_truth is not None],
    }


def format_dsc(value: float | None, grid: str | None = None) -> str:
    """'0.8123', '0.8123 (model grid)' or '–'."""
    if value is None:
        return "–"
    return f"{value:.4f}" + (f" ({grid} grid)" if grid else "")


def ending(rounds: Sequence[Any]) -> str:
    """One line: how the run ended and its latest DSC vs truth."""
    if not rounds:
        return "no rounds yet"
    last = rounds[-1]
    dsc = format_dsc(last.dsc_vs_truth, getattr(last, "dsc_grid", None))
    fine = int(last.round)  # rounds are numbered from 0 (the coarse stage), as max_rounds counts the fine ones
    done = "round 0 only" if fine == 0 else f"round 0 + {fine} fine round{'s' if fine != 1 else ''}"
    if last.stopped:
        return f"{done}, stopped ({last.stopped}); final DSC vs truth {dsc}"
    return f"{done}, not stopped yet (stepped by hand); latest DSC vs truth {dsc}"


def explain_empty(rounds: Sequence[Any], trained_on: str | None = None,
                  target_labels: Sequence[int] = ()) -> str | None:
    """Plain words for an empty result (``None`` when the latest mask is not empty)."""
    if not rounds or rounds[-1].voxels > 0:
        return None
    last = rounds[-1]
    model = f"This model was trained on {trained_on}" if trained_on else "Nothing is recorded about the training data"
    labels = f", to find label {'/'.join(str(t) for t in target_labels)}" if target_labels else ""
    if last.round == 0:
        what = ("The coarse stage found no voxel of the organ anywhere in this CT, so there is no box to "
                "zoom into and the fine stage cannot run.")
    else:
        what = (f"Round {last.round} found no voxel of the organ: the fine stage looked inside the boxes of the "
                "previous round and rejected everything.")
    likely = ("An empty coarse stage usually means the CT looks unlike the training data (another scanner, "
              "field of view, voxel spacing, contrast or intensity range), not that the organ is absent.")
    return f"{what} {model}{labels}. {likely}"


def trained_on(meta: Mapping[str, Any] | None) -> str | None:
    """What a bundle's metadata says about its training data, in words (``None`` if nothing)."""
    meta = dict(meta or {})
    for key in ("trained_on", "dataset", "data"):
        if meta.get(key):
            return str(meta[key])
    if meta.get("phantom_n"):
        anatomy = f", anatomy version {meta['phantom_anatomy']}" if meta.get("phantom_anatomy") else ""
        return f"{meta['phantom_n']} synthetic phantoms (seed {meta.get('phantom_seed', '?')}{anatomy})"
    if meta.get("trained") is False:
        return "nothing: its weights are random (untrained)"
    return None
