"""The stepwise RSTN inference engine (Algorithm 1, SPEC §4; STYLE habits 4 and 5).

Like Segment Anything's predictor, the expensive step (round 0: coarse nets on every window of
every view) runs once in :meth:`RSTNEngine.start`, then the cheap step (:meth:`RSTNEngine.step`:
saliency g(P) -> crop -> fine net -> uncrop -> fusion -> components) is repeated, each output
feeding the next. The engine holds only immutable things (models in eval mode, configs, device);
every result is returned as a :class:`RoundState`, so one engine serves many sessions at once.

Data flow per view (frames in brackets)::

    HU (X, Y, Z) -> view stack (L, H, W) -> batch_size windows (n, 3, H, W) -> normalise [0, 1]
    round 0:  coarse(x) -> sigmoid -> average windows -> (L, H, W) -> canonical (X, Y, Z)
    round t:  windows touching the reference mask; I = x * g(P_{t-1}) (n, 3, H, W);
              crop each window to its own box (n, 3, h, w), batched by equal size; refine;
              sigmoid; paste back (outside the box: sigmoid(BACKGROUND_LOGIT) ~ 1e-13, stored as 0)
    fuse views -> threshold -> (rounds >= 1) keep large components -> Z_t
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from rstn_core.config import DataConfig, InferenceConfig
from rstn_core.errors import RstnError
from rstn_core.geometry import crop, crop_box
from rstn_core.inference.batching import WindowAccumulator, chunks, group_by_box_size
from rstn_core.inference.checks import check_case, check_values
from rstn_core.inference.convergence import inter_round_dsc, stop_reason
from rstn_core.inference.fusion import fuse_views, method_fusion, round_fusion
from rstn_core.inference.parallel import ordered_map, resolve_parallelism
from rstn_core.inference.postprocess import keep_large_components
from rstn_core.inference.protocol import ViewModel
from rstn_core.inference.state import RoundState, SaliencyView, cast, truth_dsc
from rstn_core.inference.summary import trained_on
from rstn_core.intensity import normalize_hu
from rstn_core.precision import resolve_precision
from rstn_core.resample import resample_case
from rstn_core.slicing import centers_touching, from_view, make_windows, to_view
from rstn_core.types import ALL_VIEWS, BBox, Case, CropReference, SaliencySource, View

log = logging.getLogger(__name__)


class RSTNEngine:
    """Algorithm 1 over explicit state: ``start(case)``, ``step(case, state)``, ``iterate``, ``run``.

    ``models``: view -> :class:`ViewModel` (a subset of the three views is fine). ``data_config``:
    the HU window the models were trained with. ``config``: :class:`InferenceConfig`.
    ``device``: torch device for the networks (arrays stay on the CPU between rounds).
    """

    def __init__(
        self,
        models: Mapping[View | str, ViewModel],
        data_config: DataConfig,
        config: InferenceConfig | None = None,
        device: str | torch.device = "cpu",
        spacing: tuple[float, float, float] | None = None,
        trained_on: str | None = None,
    ) -> None:
        if not models:
            raise RstnError("the engine needs a model for at least one view, got none")
        parsed: dict[View, ViewModel] = {}
        for key, model in models.items():
            try:
                view = View.parse(key)
            except ValueError as exc:
                raise RstnError(str(exc)) from None
            for name in ("coarse", "saliency", "refine"):
                if not callable(getattr(model, name, None)):
                    raise RstnError(f"the model for view {view.value!r} has no {name}() method: {type(model).__name__}")
            parsed[view] = model
        self.device = torch.device(device)
        for model in parsed.values():
            if isinstance(model, torch.nn.Module):
                model.to(self.device)
                model.eval()
        flags = {bool(getattr(m, "uses_saliency", True)) for m in parsed.values()}
        if len(flags) > 1:
            raise RstnError("the views' models disagree on uses_saliency (RSTN and C2F models mixed)")
        self.uses_saliency: bool = flags.pop()
        self.views: tuple[View, ...] = tuple(v for v in ALL_VIEWS if v in parsed)
        self.models: Mapping[View, ViewModel] = MappingProxyType(parsed)
        self.data_config = data_config
        self.config = config or InferenceConfig()
        # the grid the models were trained at (mm, (R, A, S)); None = any grid is used as it is
        self.spacing = None if spacing is None else tuple(float(s) for s in spacing)
        try:  # the precision actually used, recorded (rstn predict prints it)
            self.precision = resolve_precision(self.config.precision, self.device, "inference")
        except ValueError as exc:
            raise RstnError(str(exc)) from None
        # how many network calls run at once (CPU: side by side in worker threads), recorded like the precision
        self.parallelism = resolve_parallelism(self.config.workers, self.device)
        #: what the models were trained on, in words (from the bundle's meta; None when unknown)
        self.trained_on = trained_on

    @classmethod
    def from_bundle(cls, bundle: Any, config: InferenceConfig | None = None, device: str | torch.device = "cpu"):
        """An engine over a :class:`rstn_core.models.bundle.ModelBundle`.

        Without ``config``, each method fuses views as its release does (``METHOD_FUSION``): RSTN by
        the mean in every round, C2F by majority vote at round 0 and by the mean in its fine rounds.
        """
        if config is None:
            fusion, fine_fusion = method_fusion(bundle.method)
            config = InferenceConfig(fusion=fusion, fine_fusion=fine_fusion)
        return cls(bundle.models, bundle.data_config, config, device, spacing=bundle.data_config.spacing,
                   trained_on=trained_on(getattr(bundle, "meta", None)))

    def with_config(self, **changes: Any) -> RSTNEngine:
        """A new engine sharing these models with some :class:`InferenceConfig` fields changed."""
        return RSTNEngine(dict(self.models), self.data_config, self.config.replace(**changes), self.device,
                          spacing=self.spacing, trained_on=self.trained_on)

    # ------------------------------------------------------------------ public steps
    def prepare(self, case: Case) -> Case:
        """``case`` on the grid the models were trained at (:attr:`spacing`): the same object when it is
        already there (within 5 %) or the engine has no spacing; otherwise a resampled case whose
        ``meta["resampling"]`` (:class:`rstn_core.resample.Resampling`) brings masks and probabilities back
        to the input grid. Run :meth:`start` / :meth:`step` on the prepared case; DSC against the truth is
        still computed on the input grid."""
        return resample_case(case, self.spacing)

    def start(self, case: Case) -> RoundState:
        """Round 0: coarse nets on every window of each view, average, fuse, threshold -> Z_0."""
        t0 = time.perf_counter()
        self.check_case(case)
        check_values(case)
        probs = self._coarse_views(case.image.data)
        return self._finish(case, 0, probs, {v: {} for v in self.views}, None, t0)

    def step(self, case: Case, state: RoundState) -> RoundState:
        """Round t = state.round + 1: saliency, crop from the reference mask (:meth:`reference_mask`: the
        previous fused mask, or the ground truth for the oracle), fine nets on the windows touching it,
        fuse, post-process -> Z_t."""
        t0 = time.perf_counter()
        self.check_case(case)
        probs, boxes = self._fine_views(case.image.data, state, self.reference_mask(case, state))
        return self._finish(case, state.round + 1, probs, boxes, state, t0)

    def iterate(self, case: Case) -> Iterator[RoundState]:
        r"""Yield round 0, 1, ... until the stop rule (converged, max rounds or an empty mask); the case is
        :meth:`prepare`\ d first, so the states are on the model grid."""
        case = self.prepare(case)
        state = self.start(case)
        yield state
        while state.stopped is None:
            state = self.step(case, state)
            yield state

    def run(self, case: Case) -> RoundState:
        """The final state of :meth:`iterate` (keeps at most two states in memory)."""
        final = None
        for state in self.iterate(case):
            final = state
        return final  # type: ignore[return-value]

    def saliency_view(self, case: Case, state: RoundState, view: View | str, slice_index: int) -> SaliencyView:
        """What round ``state.round + 1`` feeds the fine net of ``view`` for the window centred on
        ``slice_index``: recomputed on demand from ``state`` (SPEC §4), identical to :meth:`step`."""
        view = View.parse(view)
        if view not in self.models:
            raise RstnError(f"no model for view {view.value!r}; this engine has {[v.value for v in self.views]}")
        self.check_case(case)
        hu_stack = to_view(case.image.data, view)  # (L, H, W)
        if not 0 <= int(slice_index) < hu_stack.shape[0]:
            raise RstnError(f"slice {slice_index} outside the {view.value} view's 0..{hu_stack.shape[0] - 1}")
        centre = [int(slice_index)]
        ref_stack = to_view(self.reference_mask(case, state), view)
        box = crop_box(make_windows(ref_stack, centre)[0], self.config.margin)
        prob_stack = self._saliency_stack(state, view)
        with self._inference_mode_autocast():
            x, transformed, weights = self._transformed_windows(self.models[view], hu_stack, prob_stack, centre)
        image = x[0].float().cpu().numpy()
        w = np.ones_like(image) if weights is None else weights[0].float().cpu().numpy()
        return SaliencyView(view, int(slice_index), image, w, transformed[0].float().cpu().numpy(), box)

    def check_case(self, case: Case) -> None:
        """Refuse CTs the engine cannot run on, naming the offending value (:mod:`~rstn_core.inference.checks`)."""
        check_case(case, needs_label=self.config.crops_from is CropReference.TRUTH)

    def reference_mask(self, case: Case, state: RoundState | None) -> np.ndarray:
        """(X, Y, Z) bool mask round ``state.round + 1`` crops from (``config.crops_from``): the previous
        fused mask Z_t (``state.mask``), or the ground truth (the oracle: the same mask every round)."""
        if self.config.crops_from is CropReference.TRUTH:
            return np.asarray(case.label, dtype=bool)
        if state is None:
            raise ValueError("the prediction reference needs the previous round's state")
        return state.mask

    # ------------------------------------------------------------------ internals
    def _inference_mode_autocast(self) -> contextlib.ExitStack:
        """``torch.inference_mode`` and the resolved precision's autocast, entered together."""
        stack = contextlib.ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(self.precision.autocast())
        return stack

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device, non_blocking=True)

    @staticmethod
    def _prob(logits: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(logits.float()).cpu().numpy()

    def _windows(self, hu_stack: np.ndarray, centres) -> torch.Tensor:
        """(n, 3, H, W) normalised windows in [0, 1] on the device."""
        return self._tensor(normalize_hu(make_windows(hu_stack, centres), self.data_config))

    def _coarse_views(self, hu: np.ndarray) -> dict[View, np.ndarray]:
        """(X, Y, Z) HU -> view -> (X, Y, Z) float32 coarse probability (every window of every view runs; the
        batches of all views go through :func:`ordered_map`, accumulated in order)."""
        stacks = {v: to_view(hu, v) for v in self.views}  # (L, H, W) each
        accs = {v: WindowAccumulator(*stacks[v].shape) for v in self.views}
        tasks = [(v, list(c)) for v in self.views for c in chunks(range(stacks[v].shape[0]), self.config.batch_size)]

        def run(task: tuple[View, list[int]]) -> np.ndarray:
            view, centres = task
            with self._inference_mode_autocast():
                return self._prob(self.models[view].coarse(self._windows(stacks[view], centres)))  # (n, 3, H, W)

        return self._accumulate(tasks, run, accs)

    def _saliency_stack(self, state: RoundState, view: View) -> np.ndarray | None:
        """(L, H, W) previous probability g() reads for ``view``; ``None`` for C2F models."""
        if not getattr(self.models[view], "uses_saliency", True):
            return None
        if self.config.saliency_source is SaliencySource.FUSED:
            return to_view(state.fused_prob, view)
        if view not in state.view_probs:
            raise RstnError(f"saliency_source='view' needs the previous {view.value} probability; the state has "
                            f"{[v.value for v in state.view_probs]}")
        return to_view(state.view_probs[view], view)

    def _transformed_windows(self, model: ViewModel, hu_stack: np.ndarray, prob_stack: np.ndarray | None, centres):
        """-> (x, I = x ⊙ g(P), g(P) or None), each (n, 3, H, W) on the device."""
        x = self._windows(hu_stack, centres)  # (n, 3, H, W) in [0, 1]
        if prob_stack is None:
            return x, x, None
        weights = model.saliency(self._tensor(make_windows(prob_stack, centres)))  # (n, 3, H, W)
        return x, x * weights, weights

    def _fine_views(
        self, hu: np.ndarray, state: RoundState, reference: np.ndarray
    ) -> tuple[dict[View, np.ndarray], dict[View, dict[int, BBox | None]]]:
        """Round t >= 1 -> (view -> (X, Y, Z) float32 probability, view -> centre -> box of each window run)."""
        margin = self.config.margin
        stacks = {v: to_view(hu, v) for v in self.views}  # (L, H, W) HU
        saliency = {v: self._saliency_stack(state, v) for v in self.views}  # (L, H, W) P or None
        boxes: dict[View, dict[int, BBox | None]] = {}
        accs: dict[View, WindowAccumulator] = {}
        for view in self.views:
            ref_stack = to_view(reference, view)  # (L, H, W) bool
            boxes[view] = {int(c): crop_box(make_windows(ref_stack, [c])[0], margin)
                           for c in centers_touching(ref_stack)}
            accs[view] = WindowAccumulator(*stacks[view].shape)
            accs[view].mark([c for c, b in boxes[view].items() if b is None])  # run, nothing cropped: output 0
        tasks = [(v, b) for v in self.views for b in group_by_box_size(boxes[v], self.config.batch_size)]

        def run(task: tuple[View, list[int]]) -> np.ndarray:
            view, batch = task
            with self._inference_mode_autocast():
                _, transformed, _ = self._transformed_windows(self.models[view], stacks[view], saliency[view], batch)
                crops = torch.stack([crop(transformed[i], boxes[view][c]) for i, c in enumerate(batch)])  # (n,3,h,w)
                return self._prob(self.models[view].refine(crops))  # (n, 3, h, w)

        return self._accumulate(tasks, run, accs, boxes), boxes

    def _accumulate(self, tasks, run, accs: dict[View, WindowAccumulator],
                    boxes: dict[View, dict[int, BBox | None]] | None = None) -> dict[View, np.ndarray]:
        """``run(task)`` for every (view, centres) task through :func:`ordered_map`, each output added to its view
        (inside the windows' boxes when given) in task order -> view -> (X, Y, Z) float32 probability."""
        for (view, centres), prob in zip(tasks, ordered_map(run, tasks, self.parallelism)):
            accs[view].add(prob, centres, None if boxes is None else [boxes[view][c] for c in centres])
        return {v: from_view(accs[v].result()[0], v) for v in self.views}

    def _finish(
        self,
        case: Case,
        round_index: int,
        probs: dict[View, np.ndarray],
        boxes: dict[View, dict[int, BBox | None]],
        previous: RoundState | None,
        t0: float,
    ) -> RoundState:
        cfg = self.config
        fusion = round_fusion(round_index, cfg.fusion, cfg.fine_fusion)
        fused, mask = fuse_views([probs[v] for v in self.views], fusion, cfg.threshold)
        if round_index >= 1 and cfg.postprocess:
            mask = keep_large_components(mask, cfg.min_component_fraction)
        inter = inter_round_dsc(None if previous is None else previous.mask, mask)
        truth, grid = truth_dsc(case, mask)
        fixed = cfg.crops_from is not CropReference.PREDICTION  # the next crops do not come from Z_t
        stopped = stop_reason(round_index, mask, inter, cfg.stop_dsc, cfg.max_rounds,
                              crops_from_truth=fixed and bool(np.any(self.reference_mask(case, previous))))
        state = RoundState(
            round=round_index,
            fused_prob=fused,
            view_probs={v: cast(probs[v], cfg.view_prob_dtype) for v in self.views},
            mask=mask,
            boxes=boxes,
            inter_round_dsc=inter,
            dsc_vs_truth=truth,
            dsc_grid=grid,
            seconds=time.perf_counter() - t0,
            stopped=stopped,
        )
        log.debug("case %s round %d: %s", case.case_id, round_index, state.summary())
        return state
