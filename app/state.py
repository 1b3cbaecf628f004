"""Per-session state of the app: a ``param.Parameterized`` object with no Panel import.

The case (as loaded and as prepared for the model), the model menu, the rounds and the navigation;
the derived parameters the widgets bind to (``can_step``, ``explanation``, ``num_slices``). The page's
buttons trigger Events; the engine actions live in :class:`app.runs.RunActions` (worker threads), the
read-only accessors in :class:`app.round_views.RoundViews`. Errors a user can fix land in ``error``
(shown as an alert); the session keeps working.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import param

from rstn_core.errors import RstnError
from rstn_core.inference import summary
from rstn_core.types import Case, View

from . import cases, display, engines
from .round_views import RoundViews
from .runs import RunActions
from .settings import DisplaySettings

log = logging.getLogger(__name__)

VIEW_NAMES = [v.value for v in View]


def shared_case_key(case: Case) -> str:
    """The key under which sessions share a case (the demo) and what is computed from it."""
    return f"demo:{case.case_id}"


class SessionState(RunActions, RoundViews):
    """Case, model, the list of rounds and the navigation of one browser session (the engine actions:
    :class:`app.runs.RunActions`; the read-only accessors: :class:`app.round_views.RoundViews`)."""

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

    organ = param.String(default="", doc="label id(s) of the target organ in the label map; set to the chosen "
                                         "model's own target labels when the model is chosen")
    image_path = param.String(default="", doc="server-side image (NIfTI file or DICOM folder)")
    label_path = param.String(default="", doc="server-side label map (optional)")

    can_step = param.Boolean(default=False, doc="Step would run a round (a case, not busy, not stopped)")
    explanation = param.String(default="", doc="plain words when the result is empty")
    status = param.String(default="")
    error = param.String(default="")

    load_demo = param.Event(doc="load the built-in demo case")
    load_files = param.Event(doc="load image_path (+ label_path) from the data folder")
    jump_to_error = param.Event(doc="go to the slice with the most FP + FN voxels")

    def __init__(self, choices: Sequence[engines.ModelChoice] | None = None,
                 engine_provider: Callable[[engines.ModelChoice], engines.EngineHandle] | None = None,
                 case_provider: Callable[[], Case] | None = None,
                 shared: Callable[[str, Callable[[], Any]], Any] | None = None,
                 peek: Callable[[str], Any] | None = None, share_case: bool = True,
                 data_root: Path | None = None, **params: Any) -> None:
        """``shared(key, fn)``: a cache of deterministic results shared across sessions (the page passes
        ``pn.state.as_cached``); used for the demo case's round 0 and its prepared case. ``peek(key)``: what
        that cache already holds under ``key`` (None if nothing), without building it."""
        super().__init__(**params)
        self.display = DisplaySettings()
        self._choices = {c.key: c for c in (engines.model_choices() if choices is None else choices)}
        self._engine_provider = engine_provider or engines.get_engine
        self._case_provider = case_provider or cases.demo_case
        self._shared = shared or (lambda key, fn: fn())
        self._peek = peek or (lambda key: None)
        self._shared_key: str | None = None  # set while the case is the shared demo case
        self._share_case = share_case  # the case provider always returns the same case (the demo)
        self.data_root = Path(data_root) if data_root is not None else cases.data_root()
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

    def choice(self, key: str | None = None) -> engines.ModelChoice | None:
        return self._choices.get(key if key is not None else self.model)

    def choice_label(self, key: str) -> str:
        return self._choices[key].label

    def engine(self, key: str | None = None) -> Any:
        return self.handle(key).engine

    def handle(self, key: str | None = None) -> engines.EngineHandle:
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
        targets = getattr(getattr(handle.engine, "data_config", None), "target_labels", None)
        if targets:
            self.organ = ", ".join(str(int(t)) for t in targets)

    @param.depends("model", watch=True)
    def _on_model(self) -> None:
        self._describe_model()
        self._clear_rounds()
        if self.source_case is not None:
            self._show(self.source_case)
        self.status = f"model {self.choice_label(self.model)} selected"

    # --- loading ---------------------------------------------------------------------------------

    def set_case(self, case: Case, shared_key: str | None = None) -> None:
        """Make ``case`` current: forget all rounds, prepare it for the engine, centre the navigation; a CT whose
        values do not look like Hounsfield units is shown with a warning in ``error``."""
        self._shared_key = shared_key
        from rstn_core.inference.diagnose import hu_problem

        self._clear_rounds()
        self.source_case = case
        if self._show(case):
            problem = hu_problem(case.image.data)  # the library's test (also behind predict's diagnosis)
            self.error = (f"{case.case_id} is loaded, but {problem}: the model will most likely find nothing"
                          if problem else "")
            self.status = f"loaded {case.case_id}"

    def prepared(self, case: Case, key: str | None = None) -> Case:
        """``engine.prepare(case)`` once per case and model when the engine has it (spacing-aware engines
        resample to the model's grid); the case itself otherwise."""
        choice = self.choice(key)
        prepare = getattr(self.engine(key), "prepare", None) if choice is not None else None
        if prepare is None:
            return case
        if self._shared_key is not None and case is self.source_case:
            return self._shared(self.prepared_key(self._shared_key, key), lambda: prepare(case))
        return prepare(case)

    def prepared_key(self, shared_key: str, key: str | None = None) -> str:
        """The cross-session cache key of a shared case prepared for the model ``key`` (default: the chosen)."""
        return f"rstn-prepared:{self.choice(key).key}:{shared_key}"

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
            self.set_case(case, shared_key=shared_case_key(case) if self._share_case else None)

    @param.depends("load_files", watch=True)
    def _on_load_files(self) -> None:
        def load() -> Case:
            if not self.image_path:
                raise RstnError("choose an image (NIfTI file or DICOM folder) first")
            labels = cases.parse_labels(self.organ)
            return cases.load_case_from_paths(self.image_path, self.label_path or None, labels, self.data_root)

        case = self._guarded("loading files", load)
        if case is not None:
            self.set_case(case)

    def load_upload(self, image_name: str, image_bytes: bytes, label_name: str | None = None,
                    label_bytes: bytes | None = None) -> bool:
        """Load an uploaded NIfTI (and label map). Returns True on success, else sets ``error``."""
        def load() -> Case:
            labels = cases.parse_labels(self.organ)
            return cases.load_case_from_upload(image_name, image_bytes, label_name, label_bytes, labels)

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
        words = summary.explain_empty(self.rounds, getattr(handle, "trained_on", None), labels) or ""
        if words and handle is not None:
            words = " ".join([words, *self._engine_diagnosis(last, handle.engine)])
        self.param.update(
            can_step=self.case is not None and not self.busy and (last is None or last.stopped is None),
            explanation=words)

    def _engine_diagnosis(self, last: Any, engine: Any) -> list[str]:
        """The library's checks of an empty run (HU scale, voxel size) when it has them
        (``rstn_core.inference.diagnose``, landing with the spacing-aware engine); none otherwise."""
        try:
            from rstn_core.inference import diagnose
        except ImportError:
            return []
        try:
            lines = diagnose.explain_empty(self.source_case, last, engine)
        except Exception:  # noqa: BLE001 - a diagnosis must never break the page
            log.exception("diagnosis of an empty run failed")
            return []
        return [f"{line[0].upper()}{line[1:]}." for line in lines if line.startswith("likely cause")]

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
