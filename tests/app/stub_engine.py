"""A stub with the public API of ``rstn_core.inference.engine.RSTNEngine`` (no torch, fast, deterministic).

Round 0 is a blurred, shifted guess of the target; every later round moves the probability halfway
towards the truth (or towards a HU blob when the case has no label), so the inter-round DSC rises and
the run stops at ``stop_dsc`` like the real engine. ``delay`` (seconds per call) lets tests see the
page stay responsive while a step runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rstn_core.config import DataConfig, InferenceConfig
from rstn_core.evaluation.metrics import dsc
from rstn_core.geometry import crop_box
from rstn_core.inference.state import RoundState, SaliencyView
from rstn_core.intensity import normalize_hu
from rstn_core.slicing import centers_touching, make_windows, to_view
from rstn_core.types import ALL_VIEWS, Case, Orientation, View, Volume


@dataclass(frozen=True, eq=False)
class StubRound(RoundState):
    """A RoundState with the spacing-aware engine's ``dsc_grid`` (landing on main later)."""

    dsc_grid: str = "input"


@dataclass
class StubEngine:
    data_config: DataConfig = field(default_factory=lambda: DataConfig(target_labels=(7,)))
    config: InferenceConfig = field(default_factory=InferenceConfig)
    delay: float = 0.0
    step_delay: float = 0.0  # extra seconds per Step (a slow round; round 0 stays fast)
    shift: int = 2
    fail_on_step: bool = False
    empty: bool = False  # find nothing, as the demo model does on an unlike CT
    calls: list = field(default_factory=list)

    def prepare(self, case) -> Case:
        """The spacing-aware engine's hook: the same case when there is nothing to resample."""
        self.calls.append(("prepare", case.case_id))
        return case

    def _target(self, case) -> np.ndarray:
        if case.label is not None:
            return case.label.astype(np.float32)
        hu = case.image.data
        return ((hu > 20) & (hu < 80)).astype(np.float32)

    def _state(self, case, prob: np.ndarray, round_index: int, previous, t0: float) -> RoundState:
        mask = prob >= self.config.threshold
        boxes = {view: {} for view in ALL_VIEWS}  # round 0 runs every window uncropped, as the engine does
        for view in ALL_VIEWS if previous is not None else ():
            ref = previous.mask
            stack = to_view(ref, view)
            boxes[view] = {int(c): crop_box(make_windows(stack, [c])[0], self.config.margin)
                           for c in centers_touching(stack)}
        inter = None if previous is None else dsc(previous.mask, mask)
        truth = None if case.label is None else dsc(mask, case.label.astype(bool))
        stopped = None
        if not mask.any():
            stopped = "empty-coarse" if round_index == 0 else "empty-mask"
        elif inter is not None and inter >= self.config.stop_dsc:
            stopped = "converged"
        elif round_index >= self.config.max_rounds:
            stopped = "max-rounds"
        views = {v: np.clip(prob + 0.05 * (i - 1), 0, 1).astype(np.float32) for i, v in enumerate(ALL_VIEWS)}
        return StubRound(round_index, prob.astype(np.float32), views, mask, boxes, inter, truth,
                         time.perf_counter() - t0, stopped)

    def start(self, case) -> RoundState:
        t0 = time.perf_counter()
        self.calls.append(("start", case.case_id))
        time.sleep(self.delay)
        target = self._target(case)
        prob = np.roll(target, self.shift, axis=0) * (0.0 if self.empty else 0.9)
        return self._state(case, prob, 0, None, t0)

    def step(self, case, state: RoundState) -> RoundState:
        t0 = time.perf_counter()
        self.calls.append(("step", case.case_id, state.round))
        if self.fail_on_step:
            raise RuntimeError("stub failure")
        time.sleep(self.delay + self.step_delay)
        prob = 0.5 * state.fused_prob + (0.0 if self.empty else 0.5) * self._target(case)
        return self._state(case, prob, state.round + 1, state, t0)

    def iterate(self, case):
        state = self.start(case)
        yield state
        while state.stopped is None:
            state = self.step(case, state)
            yield state

    def run(self, case) -> RoundState:
        state = None
        for state in self.iterate(case):  # noqa: B007 - the last one is the result
            pass
        return state

    def saliency_view(self, case, state: RoundState, view, slice_index: int) -> SaliencyView:
        view = View.parse(view)
        prob = make_windows(to_view(state.fused_prob, view), [slice_index])[0]  # (3, H, W)
        image = make_windows(to_view(normalize_hu(case.image.data, self.data_config), view), [slice_index])[0]
        weights = (1.0 + 0.8 * (prob - 0.3)).astype(np.float32)
        box = crop_box(make_windows(to_view(state.mask, view), [slice_index])[0], self.config.margin)
        return SaliencyView(view, int(slice_index), image, weights, (image * weights).astype(np.float32), box)


def make_engine(method: str = "rstn", delay: float = 0.0, step_delay: float = 0.0) -> StubEngine:
    """A stub for ``method`` ("rstn" or "c2f"): ``App(engines=make_engine)``."""
    return StubEngine(delay=delay, step_delay=step_delay, shift=2 if method == "rstn" else 4)


def small_case() -> Case:
    """A small ellipsoid 'abdomen' with an elongated 'pancreas' (label 7): a fast case for state tests."""
    shape = (96, 80, 48)
    spacing = np.array([2.0, 2.0, 3.0])
    x, y, z = np.meshgrid(*(np.arange(s, dtype=np.float32) for s in shape), indexing="ij")
    body = ((x - 48) / 44) ** 2 + ((y - 40) / 34) ** 2 < 1
    hu = np.where(body, 20.0, -1000.0).astype(np.float32)
    rng = np.random.default_rng(0)
    hu += rng.normal(0, 12, size=shape).astype(np.float32) * body
    pancreas = (((x - 44) / 18) ** 2 + ((y - 46) / 5) ** 2 + ((z - 24) / 9) ** 2) < 1
    hu[pancreas] = 45.0 + rng.normal(0, 8, size=int(pancreas.sum()))
    labels = pancreas.astype(np.uint8) * 7
    affine = np.diag([*spacing, 1.0])
    volume = Volume(hu, affine, Orientation(affine.copy(), shape, np.array([[0, 1], [1, 1], [2, 1]])), "synthetic")
    return Case("synthetic-demo", volume, labels == 7, labels, {"source": "synthetic"})
