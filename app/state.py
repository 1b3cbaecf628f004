"""Per-session state of the app: a ``param.Parameterized`` object with no Panel import.

The page's buttons trigger the Events below (``state.param.trigger('step')``); the watchers run the
engine in a worker thread (``asyncio.to_thread``) so the page stays live, and update parameters only
back on the event loop. In plain Python (tests) the same watchers run to completion synchronously.
Errors a user can fix land in ``error`` (shown as an alert); the session keeps working.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import param

from rstn_core.errors import RstnError
from rstn_core.inference import summary
from rstn_core.types import Case, View

from . import backend, display

log = logging.getLogger(__name__)

VIEW_NAMES = [v.value for v in View]


class DisplaySettings(param.Parameterized):
    """How slices are drawn (no effect on the engine)."""

    window = param.Selector(default="abdomen (W350 L40)", objects=[*display.WINDOW_PRESETS, "custom"])
    level = param.Number(default=40.0, bounds=(-1500, 3000), doc="custom window centre (HU)")
    width = param.Number(default=350.0, bounds=(1, 5000), doc="custom window width (HU)")
    opacity = param.Number(default=0.6, bounds=(0.0, 1.0))
    outline = param.Boolean(default=False, doc="contours instead of filled masks")
    errors = param.Boolean(default=True, doc="colour prediction as TP / FP / FN against the truth")
    show_truth = param.Boolean(default=True)
    show_prediction = param.Boolean(default=True)
    show_boxes = param.Boolean(default=True)
    saliency_span = param.Number(default=0.1, bounds=(0.005, 2.0),
                                 doc="fixed colour scale of g(P): 1 ± span (the same in every view and slice)")
    saliency_mode = param.Selector(default="difference X⊙g(P) − X", objects=["difference X⊙g(P) − X",
                                                                             "transformed X⊙g(P)"])
    difference_span = param.Number(default=0.05, bounds=(0.001, 1.0),
                                   doc="fixed colour scale of the difference X⊙g(P) − X: ± span")

    @param.depends("window", "level", "width")
    def clim(self) -> tuple[float, float]:
        return display.preset_clim(self.window, (self.level, self.width))


class SessionState(param.Parameterized):
    """Case, model, the list of rounds and the navigation of one browser session."""

    model = param.Selector(default=None, objects=[], doc="key of the model choice")
    compare_model = param.Selector(default=None, objects=[], doc="baseline model for the comparison")
    model_info = param.String(default="", constant=False)

    source_case = param.Parameter(default=None, doc="the Case as loaded (canonical frame)")
    case = param.Parameter(default=None, doc="the Case shown and stepped: engine.prepare(source_case) when the "
                                             "engine has prepare(), else source_case")
    case_info = param.String(default="")
    rounds = param.List(default=[], doc="RoundState per round of the current model")
    compare_rounds = param.List(default=[], doc="RoundState per round of the baseline")

    round_index = param.Integer(default=0, bounds=(0, None))
    view = param.Selector(default="axial", objects=VIEW_NAMES)
    slice_index = param.Integer(default=0, bounds=(0, None))
    num_slices = param.Integer(default=1)

    organ = param.String(default="7", doc="label id(s) of the target organ in the label map")
    image_path = param.String(default="", doc="server-side image (NIfTI file or DICOM folder)")
    label_path = param.String(default="", doc="server-side label map (optional)")

    can_step = param.Boolean(default=False, doc="Step would run a round (a case, not busy, not stopped)")
    explanation = param.String(default="", doc="plain words when the result is empty")
    busy = param.Boolean(default=False)
    progress = param.Integer(default=0, bounds=(0, 100))
    status = param.String(default="")
    error = param.String(default="")

    load_demo = param.Event(doc="load the built-in demo case")
    load_files = param.Event(doc="load image_path (+ label_path) from the data folder")
    coarse = param.Event(doc="round 0: coarse nets on every window")
    step = param.Event(doc="one more recurrent round")
    run = param.Event(doc="step until the engine stops")
    reset = param.Event(doc="forget every round")
    cancel = param.Event(doc="stop a running 'run' between rounds")
    compare = param.Event(doc="run the model and the baseline to convergence")
    jump_to_error = param.Event(doc="go to the slice with the most FP + FN voxels")

    def __init__(self, choices: Sequence[backend.ModelChoice] | None = None,
                 engine_provider: Callable[[backend.ModelChoice], backend.EngineHandle] | None = None,
                 case_provider: Callable[[], Case] | None = None,
                 shared: Callable[[str, Callable[[], Any]], Any] | None = None, share_case: bool = True,
                 data_root: Path | None = None, **params: Any) -> None:
        """``shared(key, fn)``: a cache of deterministic results shared across sessions (the page passes
        ``pn.state.as_cached``); used for the demo case's round 0 and its prepared case."""
        super().__init__(**params)
        self.display = DisplaySettings()
        self._choices = {c.key: c for c in (backend.model_choices() if choices is None else choices)}
        self._engine_provider = engine_provider or backend.get_engine
        self._case_provider = case_provider or backend.demo_case
        self._shared = shared or (lambda key, fn: fn())
        self._shared_key: str | None = None  # set while the case is the shared demo case
        self._share_case = share_case  # the case provider always returns the same case (the demo)
        self.data_root = Path(data_root) if data_root is not None else backend.data_root()
        self._cancel_requested = False
        self._saliency_cache: OrderedDict = OrderedDict()
        keys = list(self._choices)
        self.param.model.objects = keys
        self.param.compare_model.objects = keys
        if keys:
            main = next((k for k in keys if self._choices[k].method == "rstn"), keys[0])
            baseline = next((k for k in keys if self._choices[k].method == "c2f"), None)
            with param.parameterized.discard_events(self):
                self.model = main
                self.compare_model = baseline
        self._describe_model()

    # --- model -----------------------------------------------------------------------------------

    def choice(self, key: str | None = None) -> backend.ModelChoice | None:
        return self._choices.get(key if key is not None else self.model)

    def choice_label(self, key: str) -> str:
        return self._choices[key].label

    def engine(self, key: str | None = None) -> Any:
        return self.handle(key).engine

    def handle(self, key: str | None = None) -> backend.EngineHandle:
        choice = self.choice(key)
        if choice is None:
            raise RstnError("no model is available: put a .rstn bundle in rstn_core/demo or the data folder")
        return self._engine_provider(choice)

    def _describe_model(self) -> None:
        """Load the chosen model now (shared, once per process) and say what it is."""
        choice = self.choice()
        if choice is None:
            self.model_info = "no model available"
            self.error = "no model is available: put a .rstn bundle in rstn_core/demo or the data folder"
            return
        handle = self._guarded(f"model {choice.label}", lambda: self._engine_provider(choice))
        if handle is None:
            self.model_info = f"{choice.label} (failed to load)"
            return
        self.model_info = handle.description

    @param.depends("model", watch=True)
    def _on_model(self) -> None:
        self._describe_model()
        self._clear_rounds()
        if self.source_case is not None:
            self._show(self.source_case)
        self.status = f"model {self.choice_label(self.model)} selected"

    # --- loading ---------------------------------------------------------------------------------

    def set_case(self, case: Case, shared_key: str | None = None) -> None:
        """Make ``case`` current: forget all rounds, prepare it for the engine, centre the navigation."""
        self._shared_key = shared_key
        self._clear_rounds()
        self.source_case = case
        if self._show(case):
            self.error = ""
            self.status = f"loaded {case.case_id}"

    def prepared(self, case: Case, key: str | None = None) -> Case:
        """``engine.prepare(case)`` once per case and model when the engine has it (spacing-aware engines
        resample to the model's grid); the case itself otherwise."""
        choice = self.choice(key)
        prepare = getattr(self.engine(key), "prepare", None) if choice is not None else None
        if prepare is None:
            return case
        if self._shared_key is not None and case is self.source_case:
            return self._shared(f"rstn-prepared:{choice.key}:{self._shared_key}", lambda: prepare(case))
        return prepare(case)

    def _show(self, source: Case) -> bool:
        case = self._guarded("preparing the case for the model", lambda: self.prepared(source))
        if case is None:
            return False
        shape = case.image.shape
        spacing = ", ".join(f"{s:.2f}" for s in case.image.spacing)
        truth = "no label" if case.label is None else f"target voxels {int(case.label.sum())}"
        original = "×".join(map(str, source.image.shape))
        resampled = "" if case is source else f" (resampled for the model from {original})"
        with param.parameterized.batch_call_watchers(self):
            self.case = case
            self.case_info = (f"{case.case_id} · {shape[0]}×{shape[1]}×{shape[2]} voxels{resampled} · "
                              f"spacing {spacing} mm · {truth}")
            self._centre_navigation()
            self._update_flags()
        return True

    def _guarded(self, action: str, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; a user error or a failure becomes the ``error`` message (the session continues)."""
        try:
            return fn()
        except RstnError as exc:
            self.error = f"{action}: {exc}"
        except Exception as exc:  # noqa: BLE001 - the page must survive any failure
            log.exception("%s failed", action)
            self.error = f"{action} failed unexpectedly: {type(exc).__name__}: {exc}"
        return None

    @param.depends("load_demo", watch=True)
    def _on_load_demo(self) -> None:
        case = self._guarded("demo case", self._case_provider)
        if case is not None:
            self.set_case(case, shared_key=f"demo:{case.case_id}" if self._share_case else None)

    @param.depends("load_files", watch=True)
    def _on_load_files(self) -> None:
        def load() -> Case:
            if not self.image_path:
                raise RstnError("choose an image (NIfTI file or DICOM folder) first")
            labels = backend.parse_labels(self.organ)
            return backend.load_case_from_paths(self.image_path, self.label_path or None, labels, self.data_root)

        case = self._guarded("loading files", load)
        if case is not None:
            self.set_case(case)

    def load_upload(self, image_name: str, image_bytes: bytes, label_name: str | None = None,
                    label_bytes: bytes | None = None) -> bool:
        """Load an uploaded NIfTI (and label map). Returns True on success, else sets ``error``."""
        def load() -> Case:
            labels = backend.parse_labels(self.organ)
            return backend.load_case_from_upload(image_name, image_bytes, label_name, label_bytes, labels)

        case = self._guarded(f"upload {image_name}", load)
        if case is None:
            return False
        self.set_case(case)
        return True

    # --- engine actions --------------------------------------------------------------------------

    def _clear_rounds(self) -> None:
        self.param.update(rounds=[], compare_rounds=[], round_index=0)
        self._saliency_cache.clear()

    @param.depends("rounds", "busy", "case", watch=True)
    def _update_flags(self) -> None:
        """Derived parameters the widgets bind to: can_step, the round slider's bounds, the explanation."""
        last = self.rounds[-1] if self.rounds else None
        handle = None
        if last is not None and last.voxels == 0:
            handle = self._guarded("model", lambda: self.handle())
        labels = tuple(getattr(getattr(handle, "engine", None), "data_config", None).target_labels) if handle else ()
        self.param.update(
            can_step=self.case is not None and not self.busy and (last is None or last.stopped is None),
            explanation=summary.explain_empty(self.rounds, getattr(handle, "trained_on", None), labels) or "")

    async def _job(self, name: str, work: Callable[[], Any]) -> None:
        """Run one action unless another runs; errors become messages."""
        if self.busy:
            self.status = f"busy: {name} ignored until the current action finishes"
            return
        if self.case is None:
            self.error = f"{name}: load a case first"
            return
        self.busy, self.error, self.progress, self._cancel_requested = True, "", 0, False
        t0 = time.perf_counter()
        try:
            await work()
        except RstnError as exc:
            self.error = f"{name}: {exc}"
        except Exception as exc:  # noqa: BLE001 - keep the session alive
            log.exception("%s failed", name)
            self.error = f"{name} failed unexpectedly: {type(exc).__name__}: {exc}"
        finally:
            self.busy = False
            self.progress = 100 if not self.error else 0
            log.info("%s took %.2f s", name, time.perf_counter() - t0)

    def _append(self, state: Any) -> None:
        # one batched update: every view re-renders once per round
        self.param.update(rounds=[*self.rounds, state], round_index=len(self.rounds),
                          status=self._round_status(state, self.rounds[-1] if self.rounds else None))

    @staticmethod
    def _round_status(state: Any, previous: Any = None) -> str:
        row = summary.round_rows([r for r in (previous, state) if r is not None])[-1]
        parts = [f"round {row.round}", f"{row.seconds:.2f} s", f"{row.voxels} voxels"]
        if row.both_empty:
            parts.append("inter-round DSC – (both masks empty)")
        elif row.inter_round_dsc is not None:
            parts.append(f"inter-round DSC {row.inter_round_dsc:.4f}")
        if row.dsc_vs_truth is not None:
            parts.append(f"DSC vs truth {summary.format_dsc(row.dsc_vs_truth, row.dsc_grid)}")
        if row.stopped:
            parts.append(f"stopped: {row.stopped}")
        return " · ".join(parts)

    async def _round0(self, key: str | None = None) -> Any:
        """Round 0 of the current case; for the shared demo case computed once per process and model."""
        engine, case = self.engine(key), self.case
        backend.check_case_for_engine(case, engine)
        if self._shared_key is None:
            return await asyncio.to_thread(engine.start, case)
        cache_key = f"rstn-round0:{self.choice(key).key}:{self._shared_key}"
        return await asyncio.to_thread(self._shared, cache_key, lambda: engine.start(case))

    async def _start(self) -> None:
        self.status = "coarse stage running…"
        state = await self._round0()
        self._saliency_cache.clear()
        self.param.update(rounds=[state], compare_rounds=[], round_index=0, status=self._round_status(state))

    async def _one_step(self) -> None:
        if not self.rounds:
            await self._start()
            return
        if self.rounds[-1].stopped:
            self.status = (f"the run has stopped ({self.rounds[-1].stopped}): Step does nothing more; "
                           "press Reset to start again")
            return
        engine, case, last = self.engine(), self.case, self.rounds[-1]
        self.status = f"round {last.round + 1} running…"
        state = await asyncio.to_thread(engine.step, case, last)
        self._append(state)

    async def _until_stopped(self, rounds_attr: str, key: str | None, label: str) -> None:
        engine, case = self.engine(key), self.case
        if key is not None and getattr(engine, "prepare", None) is not None:
            other = await asyncio.to_thread(self.prepared, self.source_case, key)
            if other.image.shape != case.image.shape:
                raise RstnError(f"{label} works on a {other.image.shape} grid, the shown case is {case.image.shape}: "
                                "compare models trained at the same spacing")
        states = list(getattr(self, rounds_attr))
        cap = int(getattr(getattr(engine, "config", None), "max_rounds", 10))
        if not states:
            self.status = f"{label}: coarse stage running…"
            states = [await self._round0(key)]
            self._store(rounds_attr, states, label)
        while states[-1].stopped is None and not self._cancel_requested:
            self.status = f"{label}: round {states[-1].round + 1} running…"
            states.append(await asyncio.to_thread(engine.step, case, states[-1]))
            self._store(rounds_attr, states, label)
            self.progress = min(99, int(100 * states[-1].round / max(cap, 1)))
        if self._cancel_requested:
            self.status = f"{label}: cancelled after round {states[-1].round}"

    def _store(self, rounds_attr: str, states: list, label: str) -> None:
        previous = states[-2] if len(states) > 1 else None
        updates: dict[str, Any] = {rounds_attr: list(states),
                                   "status": f"{label}: {self._round_status(states[-1], previous)}"}
        if rounds_attr == "rounds":
            updates["round_index"] = len(states) - 1
        self.param.update(**updates)

    @param.depends("coarse", watch=True)
    async def _on_coarse(self) -> None:
        await self._job("coarse stage", self._start)

    @param.depends("step", watch=True)
    async def _on_step(self) -> None:
        await self._job("step", self._one_step)

    @param.depends("run", watch=True)
    async def _on_run(self) -> None:
        await self._job("run", lambda: self._until_stopped("rounds", None, "run"))

    @param.depends("compare", watch=True)
    async def _on_compare(self) -> None:
        async def both() -> None:
            if self.compare_model is None:
                raise RstnError("no baseline (C2F) model is available for the comparison")
            await self._until_stopped("rounds", None, self.choice_label(self.model))
            if not self._cancel_requested:
                await self._until_stopped("compare_rounds", self.compare_model,
                                          self.choice_label(self.compare_model))

        await self._job("compare", both)

    @param.depends("cancel", watch=True)
    def _on_cancel(self) -> None:
        if self.busy:
            self._cancel_requested = True
            self.status = "cancelling after the current round…"

    @param.depends("reset", watch=True)
    def _on_reset(self) -> None:
        if self.busy:
            self.status = "busy: cancel first, then reset"
            return
        self._clear_rounds()
        self.error = ""
        self.status = "reset: no rounds"

    # --- navigation ------------------------------------------------------------------------------

    def _centre_navigation(self) -> None:
        if self.case is None:
            return
        n = display.num_slices(self.case.image.shape, self.view)
        target = self.current_mask() if self.rounds else self.case.label
        index = display.largest_slice(target, self.view) if target is not None else n // 2
        self.param.slice_index.bounds = (0, n - 1)
        self.param.update(num_slices=n, slice_index=index)

    @param.depends("view", watch=True)
    def _on_view(self) -> None:
        self._centre_navigation()

    @param.depends("jump_to_error", watch=True)
    def _on_jump(self) -> None:
        if self.case is None or self.case.label is None or not self.rounds:
            self.status = "jump to error needs a prediction and a ground truth"
            return
        index = display.worst_slice(self.current_mask(), self.case.label, self.view)
        if index is None:
            self.status = "no error on this view"
            return
        self.slice_index = index
        self.status = f"slice {index}: the most FP + FN voxels on the {self.view} view"

    # --- read-only accessors for the views -------------------------------------------------------

    @property
    def current_round(self) -> Any | None:
        if not self.rounds:
            return None
        return self.rounds[min(self.round_index, len(self.rounds) - 1)]

    def current_mask(self) -> np.ndarray | None:
        state = self.current_round
        return None if state is None else state.mask

    def saliency(self, round_index: int | None = None, view: str | None = None,
                 slice_index: int | None = None) -> Any | None:
        """What the fine net saw at round ``round_index`` (>= 1): the engine's SaliencyView, cached."""
        r = self.round_index if round_index is None else round_index
        view = view or self.view
        s = self.slice_index if slice_index is None else slice_index
        if self.case is None or r < 1 or r >= len(self.rounds):
            return None
        key = (self.model, r, view, s)
        if key not in self._saliency_cache:
            engine = self.engine()
            previous = self.rounds[r - 1]
            if View.parse(view) not in getattr(previous, "view_probs", {View.parse(view): None}):
                return None
            try:
                self._saliency_cache[key] = engine.saliency_view(self.case, previous, View.parse(view), s)
            except RstnError as exc:
                self.error = f"saliency: {exc}"
                return None
            while len(self._saliency_cache) > 64:
                self._saliency_cache.popitem(last=False)
        return self._saliency_cache[key]

    def organ_slice(self, view: View | str) -> int:
        """The slice of ``view`` with the most target voxels (truth, else the latest mask, else the middle)."""
        target = self.case.label if self.case.label is not None and self.case.label.any() else self.current_mask()
        if target is None:
            return display.num_slices(self.case.image.shape, view) // 2
        return display.largest_slice(target, view)

    def difference_slice(self) -> int | None:
        """The slice of the current view where the model's and the baseline's final masks differ most."""
        if not self.rounds or not self.compare_rounds:
            return None
        main, base = self.rounds[-1].mask, self.compare_rounds[-1].mask
        if main.shape != base.shape:
            return None
        return display.worst_slice(main, base, self.view)

    def stop_dsc(self) -> float:
        """The engine's stop threshold (0.99 when no engine can be loaded)."""
        try:
            return float(getattr(getattr(self.engine(), "config", None), "stop_dsc", 0.99))
        except Exception:  # noqa: BLE001 - a missing engine is reported by the actions
            return 0.99

    def settings(self) -> dict:
        """Plain record of what produced the rounds (for the report)."""
        engine = self.engine() if self.choice() is not None else None
        out: dict[str, Any] = {"model": self.model_info}
        config = getattr(engine, "config", None)
        if config is not None and hasattr(config, "to_dict"):
            out["inference"] = config.to_dict()
        data_config = getattr(engine, "data_config", None)
        if data_config is not None and hasattr(data_config, "to_dict"):
            out["data"] = data_config.to_dict()
        out["window"] = f"{self.display.window} → clim {self.display.clim()}"
        return out
