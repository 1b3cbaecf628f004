"""The named training stages (SPEC §3) and what each one trains.

RSTN, per view: ``S`` (fine net on ground-truth boxes of the raw image, no saliency; the coarse
net trains beside it with its own loss, the two nets warm up separately), ``I`` (with saliency,
ground-truth boxes) and ``J`` (with saliency, boxes from the coarse prediction binarised at 0.5,
ground truth where the prediction is empty). C2F (Zhou et al. 2017): ``coarse`` and ``fine``
trained separately, the fine net on raw ground-truth crops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rstn_core.config import StageConfig
from rstn_core.types import Method

BOXES_FROM_TRUTH = "truth"
BOXES_FROM_PREDICTION = "prediction"


@dataclass(frozen=True)
class StageSpec:
    """What a stage computes: which nets see a loss, whether g is applied, where boxes come from, and
    whether the released convergence check (restarting the stage when it fails) follows it."""

    name: str
    trains_coarse: bool
    trains_fine: bool
    uses_saliency: bool
    boxes: str  # BOXES_FROM_TRUTH or BOXES_FROM_PREDICTION
    checks_convergence: bool = False  # the check after S: its losses are kept, a failure restarts it


STAGE_SPECS: dict[str, StageSpec] = {
    "S": StageSpec("S", True, True, False, BOXES_FROM_TRUTH, checks_convergence=True),
    "I": StageSpec("I", True, True, True, BOXES_FROM_TRUTH),
    "J": StageSpec("J", True, True, True, BOXES_FROM_PREDICTION),
    "coarse": StageSpec("coarse", True, False, False, BOXES_FROM_TRUTH),
    "fine": StageSpec("fine", False, True, False, BOXES_FROM_TRUTH),
}

METHOD_STAGES: dict[Method, tuple[str, ...]] = {Method.RSTN: ("S", "I", "J"), Method.C2F: ("coarse", "fine")}


def check_stages(method: Method, stages: Sequence[StageConfig]) -> None:
    """Refuse stage names that do not belong to ``method`` or that repeat (ValueError, names given)."""
    allowed = METHOD_STAGES.get(method)
    if allowed is None:
        raise ValueError(f"unknown method {method!r}; expected one of {[m.value for m in METHOD_STAGES]}")
    names = [s.name for s in stages]
    wrong = [n for n in names if n not in allowed]
    if wrong:
        raise ValueError(f"stages {wrong} do not belong to method {method!r} (its stages: {', '.join(allowed)})")
    if len(set(names)) != len(names):
        raise ValueError(f"stages must not repeat, got {names}")
    order = [allowed.index(n) for n in names]
    if order != sorted(order):
        raise ValueError(f"stages must run in the order {', '.join(allowed)}; got {', '.join(names)}")


def stage_lr(base_lr: float, stage: StageConfig, iteration: int) -> float:
    """Learning rate at ``iteration`` of ``stage``: halved every ``lr_halve_every`` iterations (0 = constant)."""
    if stage.lr_halve_every <= 0:
        return base_lr
    return base_lr * 0.5 ** (iteration // stage.lr_halve_every)


AVERAGE_WINDOW = 20  # the released code logs (and checks) the loss averaged over 20 iterations


def converged(averages: Sequence[float], mean_below: float = 0.4, min_below: float = 0.35) -> bool:
    """The released code's check after stage S: ``averages`` are the 20-iteration mean total losses
    of its last 2% of iterations; their mean must be < ``mean_below`` and their min < ``min_below``."""
    if not averages:
        return False
    return sum(averages) / len(averages) < mean_below and min(averages) < min_below


def moving_average(values: Sequence[float], window: int = AVERAGE_WINDOW) -> list[float]:
    """Trailing means: element i is the mean of ``values[max(0, i - window + 1) : i + 1]``."""
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += float(value)
        if i >= window:
            total -= float(values[i - window])
        out.append(total / min(i + 1, window))
    return out


def tail_length(iterations: int, fraction: float = 0.02) -> int:
    """How many final iterations the convergence check looks at (at least 1)."""
    return max(1, int(round(iterations * fraction)))


def check_window(iterations: int) -> int:
    """How many raw losses the check needs: the tail plus the 19 before it that its first average reads."""
    return tail_length(iterations) + AVERAGE_WINDOW - 1
