"""When Algorithm 1 stops (SPEC §4): the inter-round DSC, the stop rule and its reasons, in one place.

The engine applies :func:`stop_reason` after every round. Cross-validation runs every case for all
``max_rounds`` rounds (so the convergence curves are complete), then :func:`replay_stop_rule` replays the
same rule (:func:`round_stop_reason`) at ``stop_dsc`` over the recorded rounds: both end at the same round.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import numpy as np

from rstn_core.metrics import dsc

#: inter-round DSC thresholds whose first reaching round the evaluation reports (§4.4.2)
CONVERGENCE_THRESHOLDS = (0.95, 0.99)


class StopReason(enum.StrEnum):
    """Why a run ended (``RoundState.stopped``). The values are the strings JSON, CSV and the app show."""

    CONVERGED = "converged"  # DSC(Z_{t-1}, Z_t) >= stop_dsc (two empty masks agree: DSC 1)
    MAX_ROUNDS = "max-rounds"  # t == max_rounds
    EMPTY_COARSE = "empty-coarse"  # Z_0 is empty: nothing to refine
    EMPTY_MASK = "empty-mask"  # Z_t (t >= 1) is empty


def inter_round_dsc(previous: np.ndarray | None, mask: np.ndarray) -> float | None:
    """DSC(Z_{t-1}, Z_t) of two same-shape bool masks; ``None`` at round 0 (``previous`` is ``None``)."""
    return None if previous is None else dsc(previous, mask)


def stop_reason(
    round_index: int,
    mask: np.ndarray,
    inter: float | None,
    stop_dsc: float,
    max_rounds: int,
    crops_from_truth: bool = False,
) -> StopReason | None:
    """The reason round ``round_index`` (t) ends the run, or ``None`` to run round t + 1.

    ``mask``: Z_t, any-shape bool. ``inter``: :func:`inter_round_dsc` of Z_{t-1} and Z_t. An empty Z_t
    ends the run unless the next crops come from a non-empty truth (``crops_from_truth``: oracle mode,
    as the release's ``oracle_testing.py`` ran the fine stage whatever the coarse map held); then only
    ``max_rounds`` ends it. Checked in order: empty mask, convergence (``inter >= stop_dsc``), max rounds.
    """
    return round_stop_reason(round_index, not np.any(mask), inter, stop_dsc, max_rounds, crops_from_truth)


def round_stop_reason(
    round_index: int,
    empty: bool,
    inter: float | None,
    stop_dsc: float,
    max_rounds: int,
    crops_from_truth: bool = False,
) -> StopReason | None:
    """:func:`stop_reason` from what a round recorded: ``empty`` (Z_t holds no voxel) instead of Z_t."""
    if empty and not (crops_from_truth and round_index < max_rounds):
        return StopReason.EMPTY_COARSE if round_index == 0 else StopReason.EMPTY_MASK
    if inter is not None and inter >= stop_dsc:
        return StopReason.CONVERGED
    if round_index >= max_rounds:
        return StopReason.MAX_ROUNDS
    return None


def first_round_reaching(inter: Sequence[float], threshold: float) -> int | None:
    """1-based first round whose inter-round DSC (``inter[t - 1]`` = DSC(Z_{t-1}, Z_t)) >= threshold, or ``None``."""
    for index, value in enumerate(inter):
        if value >= threshold:
            return index + 1
    return None


def pad_curves(
    dscs: Sequence[float], inter: Sequence[float], ended: StopReason | str, max_rounds: int
) -> tuple[list[float], list[float]]:
    """Curves of a run that ended before ``max_rounds``, padded to R + 1 DSCs and R inter-round DSCs.

    ``dscs[t]``: DSC vs truth of Z_t (at least round 0); ``inter[t - 1]``: DSC(Z_{t-1}, Z_t). Masks would
    stay as they were: the DSC keeps its last value; the inter-round DSC becomes 1.0 after convergence
    (identical masks), else keeps its last value (1.0 when there is none: an empty round 0).
    """
    dscs, inter = list(dscs), list(inter)
    while len(dscs) < max_rounds + 1:
        dscs.append(dscs[-1])
        inter.append(1.0 if ended == StopReason.CONVERGED else (inter[-1] if inter else 1.0))
    return dscs, inter


def replay_stop_rule(
    voxels: Sequence[int], inter: Sequence[float], stop_dsc: float, max_rounds: int, crops_from_truth: bool = False
) -> tuple[int, StopReason]:
    """(round, reason) the engine's stop rule at ``stop_dsc`` gives for a run recorded with a stricter one.

    ``voxels[t]``: voxels of Z_t for every recorded round t = 0..n-1; ``inter[t - 1]``: DSC(Z_{t-1}, Z_t)
    (the recorded, unpadded curve); ``crops_from_truth`` as for :func:`stop_reason`. The rounds are
    replayed through :func:`round_stop_reason`, the engine's own rule, so both agree: a recording made
    at ``stop_dsc`` 1.0 (cross-validation) stops at or after the round the rule at ``stop_dsc`` names.
    """
    for t, count in enumerate(voxels):
        reason = round_stop_reason(t, int(count) == 0, inter[t - 1] if t else None, stop_dsc, max_rounds,
                                   crops_from_truth)
        if reason is not None:
            return t, reason
    raise ValueError(f"the {len(voxels)} recorded rounds end before the stop rule at {stop_dsc} fires "
                     f"(max_rounds {max_rounds}): record with a stop_dsc >= {stop_dsc}")
