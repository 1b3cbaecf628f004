"""Immutable per-round results of the engine (SPEC §4) and small helpers over a list of them.

Memory per state for an (X, Y, Z) volume of V voxels: ``fused_prob`` 4V bytes (float32), ``mask`` V
bytes, ``view_probs`` 2V bytes per view (float16 by default, ``InferenceConfig.view_prob_dtype``).
A 512 x 512 x 250 case with three views costs ~0.6 GB per state; :meth:`RSTNEngine.run` keeps two.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from rstn_core.inference.convergence import StopReason
from rstn_core.metrics import dsc
from rstn_core.types import BBox, Case, View


def cast(array: np.ndarray, dtype) -> np.ndarray:
    """``array.astype(dtype)`` with the same rounding, through torch's vectorised, multi-threaded cast
    for float32 -> float16 (NumPy's takes ~5x longer: 0.2 s per 512 x 512 x 250 map). Keeps strides."""
    import torch  # here: the state module stays light for GUI code that only reads states

    dtype = np.dtype(dtype)
    if array.dtype == np.float32 and dtype == np.float16 and all(s >= 0 for s in array.strides):
        return torch.from_numpy(array).to(torch.float16).numpy()
    return array.astype(dtype)


def truth_dsc(case: Case, mask: np.ndarray) -> tuple[float | None, str | None]:
    """(DSC of ``mask`` against the case's truth, the grid it was computed on): on the input grid when the
    case was resampled and its input label is known, else on the case's own grid; (None, None) unlabelled."""
    record = case.meta.get("resampling")
    if record is not None and record.input_label is not None:
        return dsc(record.mask_to_input(mask), record.input_label), "input"
    if case.label is None:
        return None, None
    return dsc(mask, case.label), ("input" if record is None else "model")


@dataclass(frozen=True, eq=False)
class RoundState:
    """The result of one round of Algorithm 1, all arrays in the canonical (X, Y, Z) frame.

    ``round``: t (0 = coarse). ``fused_prob``: (X, Y, Z) float32 in [0, 1], views fused by mean
    (also under ``fusion="vote"``, where it feeds the saliency and display). ``view_probs``: per view
    (X, Y, Z) probabilities (float16 by default). ``mask``: (X, Y, Z) bool Z_t after threshold,
    fusion and post-processing. ``boxes``: per view, window centre slice -> crop box (view-slice
    pixels) or ``None`` (empty reference: nothing cropped, fine output zero); keys are exactly the
    windows run in this round (empty at round 0, where every window runs uncropped).
    ``inter_round_dsc``: DSC(Z_{t-1}, Z_t), ``None`` at round 0. ``dsc_vs_truth``: ``None`` if the
    label is unknown; ``dsc_grid`` says on which grid it was computed (``"input"``: the case's own grid,
    also for a case the engine resampled; ``"model"``: the model grid). ``seconds``: wall time of this
    round. ``stopped``: ``None`` while the engine would continue, else a :class:`StopReason` (a ``str``:
    ``converged``, ``max-rounds``, ``empty-coarse``, ``empty-mask``; the rule is in ``convergence.py``).
    """

    round: int
    fused_prob: np.ndarray
    view_probs: dict[View, np.ndarray]
    mask: np.ndarray
    boxes: dict[View, dict[int, BBox | None]] = field(default_factory=dict)
    inter_round_dsc: float | None = None
    dsc_vs_truth: float | None = None
    seconds: float = 0.0
    stopped: StopReason | None = None
    dsc_grid: str | None = None  # where dsc_vs_truth was computed: "input" (the case's own grid) or "model"

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.mask.shape)  # type: ignore[return-value]

    @property
    def voxels(self) -> int:
        return int(np.count_nonzero(self.mask))

    def summary(self) -> dict:
        """Plain-number record of this round (no arrays)."""
        return {
            "round": self.round,
            "voxels": self.voxels,
            "inter_round_dsc": self.inter_round_dsc,
            "dsc_vs_truth": self.dsc_vs_truth,
            "dsc_grid": self.dsc_grid,
            "seconds": round(self.seconds, 4),
            "stopped": self.stopped,
            "windows": {v.value: len(b) for v, b in self.boxes.items()},
        }


@dataclass(frozen=True, eq=False)
class SaliencyView:
    """What the fine net of ``view`` sees for the window centred on ``centre`` at the next round.

    ``image``: (3, H, W) float32 normalised window X. ``weights``: (3, H, W) g(P) (ones for C2F).
    ``transformed``: (3, H, W) X ⊙ g(P). ``box``: crop box in view-slice pixels or ``None``.
    """

    view: View
    centre: int
    image: np.ndarray
    weights: np.ndarray
    transformed: np.ndarray
    box: BBox | None


def dsc_per_round(states: Sequence[RoundState]) -> list[float | None]:
    """DSC vs ground truth of each round (``None`` where unknown)."""
    return [s.dsc_vs_truth for s in states]


def inter_round_dscs(states: Sequence[RoundState]) -> list[float | None]:
    """Inter-round DSC of each round (``None`` at round 0)."""
    return [s.inter_round_dsc for s in states]


def history_summary(states: Sequence[RoundState]) -> dict:
    """One record for a finished run: rounds, stop reason, coarse/final DSC and per-round curves."""
    if not states:
        raise ValueError("history_summary needs at least one state")
    last = states[-1]
    return {
        "rounds": last.round,
        "stopped": last.stopped,
        "coarse_dsc": states[0].dsc_vs_truth,
        "final_dsc": last.dsc_vs_truth,
        "dsc_per_round": dsc_per_round(states),
        "inter_round_dsc": inter_round_dscs(states),
        "seconds": float(sum(s.seconds for s in states)),
        "voxels": last.voxels,
    }
