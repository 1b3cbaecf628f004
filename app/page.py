"""The whole page as one ``pn.viewable.Viewer``: ``App(...).servable()`` in ``main.py``, or inline in a
notebook after ``pn.extension("filedropper")``.

>>> from app.page import App
>>> App()                                     # the demo: built-in bundles, the phantom case
>>> App(engines={"rstn": engine, "c2f": baseline}, case=my_case)   # your engines and case

Deterministic work shared by every session of a server (the engines, the demo case, the demo's
round 0 and its prepared case) goes through ``pn.state.as_cached``; everything else is per session.
"""

from __future__ import annotations

import html
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import panel as pn
import param

from rstn_core.types import Case

from . import cases
from .controls import DataPanel, Sidebar
from .engines import EngineHandle, ModelChoice, choices_from_engines, describe_engine, get_engine, model_choices
from .lazy import AfterLoad, LazyCard, LazyTabs, served
from .panels import ComparePanel, ConvergencePanel, ProbabilityPanel, SaliencyPanel
from .state import SessionState, shared_case_key
from .viewer import SliceViewer

GUIDE = """
<b>New here?</b> RSTN segments a small organ (here the pancreas) in a CT in rounds.
<b>Round 0</b> (<i>Coarse</i>): three networks look at the whole CT along the three views and guess where the
organ is. <b>Each Step</b> zooms into a box around the previous guess and, through the <i>saliency
transformation</i>, lets that guess brighten or dim the input before the fine network looks again.
When two successive masks agree (inter-round DSC ≥ the threshold) the run stops.
<ol>
<li>Look at the CT: ↑/↓ keys or the <i>Slice</i> slider; <i>View</i> switches axial / coronal / sagittal.</li>
<li>Press <b>Step</b> a few times and watch the chart: blue = how much the mask still changes, red = how
close it is to the ground truth (yellow outline, when the case has one).</li>
<li>Open <b>Saliency</b> to see what the fine net saw, <b>Compare</b> to run the stage-wise baseline (C2F).</li>
</ol>
"""
# a native <details>: folds in the browser with no server round trip and no widget models
GUIDE_HTML = ("<details open class='guide-card'><summary><b>What is this? (a 1-minute guide)</b></summary>"
              f"<div class='guide'>{GUIDE}</div></details>")


def header_html(model: str, case: str, view: str, index: int, n: int, round_index: int, rounds: list,
                status: str) -> str:
    """The page's title and what is shown (model, CT, view/slice/round, last action) as HTML."""
    shown = rounds[min(round_index, len(rounds) - 1)].round if rounds else "–"
    e = html.escape
    return ("<h2 style='margin:0'>RSTN Studio · finding the pancreas in a CT, round by round</h2>"
            f"<div><b>Model:</b> <span data-testid='model-info'>{e(model)}</span></div>"
            f"<div><b>CT:</b> <span data-testid='case-info'>{e(case or 'loading…')}</span></div>"
            f"<div><b>Showing:</b> <span data-testid='nav-info'>{e(str(view))} slice {index}/{n - 1} · "
            f"round {shown}</span></div>"
            f"<div><b>Last action:</b> <span data-testid='status'>{e(status)}</span></div>")


_LOCKS_GUARD = threading.Lock()
_LOCKS: dict[str, threading.Lock] = {}


def shared(key: str, build: Callable[[], Any]) -> Any:
    """``pn.state.as_cached`` under a per-key lock: built once per server process, shared by all sessions
    (a second session asking for the same key waits for the first; other keys are not held up)."""
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        return pn.state.as_cached(key, build)


def _engine_choices(given: Mapping[str, Any] | Callable[[str], Any] | None, root: Path,
                    device: str) -> list[ModelChoice]:
    if given is None:
        return model_choices(root, device)
    if callable(given) and not isinstance(given, Mapping):
        factory = given
        given = {m: (lambda m=m: factory(m)) for m in ("rstn", "c2f")}
    return choices_from_engines(given)


class App(pn.viewable.Viewer):
    """RSTN Studio for one session.

    ``engines``: ``{method: engine or zero-argument factory}`` or a factory ``method -> engine``
    (methods "rstn", "c2f"); ``None`` = the built-in demo bundles and bundles under ``data_root``.
    ``case``: the case to open with (a :class:`rstn_core.types.Case`); ``None`` = the demo phantom.
    ``data_root``: the folder the file picker may browse. ``device``: torch device of the default engines
    (default: ``$RSTN_DEVICE``, else ``cpu``).
    ``autostart``: compute round 0 as soon as the page is shown (in a notebook: at construction).
    """

    state = param.ClassSelector(class_=SessionState)

    def __init__(self, engines: Mapping[str, Any] | Callable[[str], Any] | None = None, case: Case | None = None,
                 data_root: str | Path | None = None, device: str | None = None, autostart: bool = True,
                 **params: Any) -> None:
        root = Path(data_root or cases.data_root()).resolve()
        device = device or default_device()
        given = engines is not None
        provider = _shared_engines if not given else _private_engines()
        super().__init__(state=SessionState(
            choices=_engine_choices(engines, root, device), engine_provider=provider,
            case_provider=(lambda: case) if case is not None else cases.demo_case,
            shared=shared, peek=peek, share_case=case is None, data_root=root, name="session"), **params)
        self._autostart = autostart
        self._started = False
        if not served() or self._case_is_ready():
            # the state is complete before the widgets exist: each is built once with its final value (a
            # warm server: the shared case and round 0 travel with the first page), not rebuilt by updates
            self.start()
        self._page = self._layout(root)

    def start(self) -> None:
        """Load the case and (with ``autostart``) show round 0: at once when another session of this server
        computed it already, else computed in a worker thread. Called once."""
        if self._started:
            return
        self._started = True
        self.state.param.trigger("load_demo")
        if self._autostart and self.state.case is not None and not self.state.start_from_cache():
            self.state.param.trigger("coarse")

    def _header(self) -> pn.Column:
        """The title and what is shown as one HTML pane (replaced when any of it changes), and the error alert."""
        s = self.state
        header = pn.pane.HTML(pn.bind(header_html, s.param.model_info, s.param.case_info, s.param.view,
                                      s.param.slice_index, s.param.num_slices, s.param.round_index, s.param.rounds,
                                      s.param.status), css_classes=["page-header"], margin=(0, 10))
        alert = pn.pane.Alert(pn.bind(lambda e: e or "", s.param.error), alert_type="danger",
                              visible=pn.bind(bool, s.param.error), css_classes=["error-alert"])
        return pn.Column(header, alert)

    def _layout(self, root: Path) -> pn.Row:
        """The first screen only: the tabs' contents and the data panel are built when first opened."""
        s = self.state
        self.tabs: LazyTabs | None = None

        def tabs() -> LazyTabs:
            self.tabs = LazyTabs([("Saliency", lambda: SaliencyPanel(state=s)),
                                  ("Probabilities", lambda: ProbabilityPanel(state=s)),
                                  ("Compare RSTN vs C2F", lambda: ComparePanel(state=s))])
            return self.tabs

        self.data_card = LazyCard(lambda: DataPanel(state=s, root=root),
                                  title="Load another CT: upload or server data folder",
                                  css_classes=["data-card"], sizing_mode="stretch_width")
        # the controls and the tabs follow the first screen: the CT is drawn first (a classroom's 20 first
        # pages are built before anyone's sidebar); they keep their place, so nothing on screen moves
        self.sidebar = AfterLoad(lambda: Sidebar(state=s), "<i>loading the controls…</i>", width=320)
        self.lower = AfterLoad(tabs, "", sizing_mode="stretch_width")
        self.viewer = SliceViewer(state=s)
        return pn.Row(
            self.sidebar,
            pn.Column(
                self._header(),
                pn.pane.HTML(GUIDE_HTML, margin=(0, 10), sizing_mode="stretch_width"),
                self.data_card,
                pn.Row(self.viewer, ConvergencePanel(state=s)),
                self.lower))

    def __panel__(self) -> pn.Row:
        if not self._started:
            pn.state.onload(self.start)  # the first session: the page appears at once, the case follows
        return self._page

    def _case_is_ready(self) -> bool:
        """The case and its preparation for the model are already built (the demo after its first session,
        or a case given to the App), so loading it while the page is built costs little."""
        s = self.state
        if not s._share_case:
            return True
        case = cases.cached_demo_case()
        return (s.choice() is not None and case is not None
                and peek(s.prepared_key(shared_case_key(case))) is not None)


def default_device() -> str:
    """The torch device of the default engines: ``$RSTN_DEVICE`` (e.g. ``cuda``), else ``cpu``."""
    return os.environ.get("RSTN_DEVICE", "").strip() or "cpu"


def warm_demo(data_root: str | Path | None = None, device: str | None = None) -> None:
    """Build what every demo session of this server shares (the default engines, the demo case, its
    preparation for the model and its round 0) before anyone asks, so that the first visitor's page, like
    every later one, carries the CT and round 0 (``app_hooks.py`` runs it in a thread when the server starts).
    A session opened meanwhile waits for the same cached results instead of computing them again."""
    root = Path(data_root or cases.data_root()).resolve()
    choices = _engine_choices(None, root, device or default_device())
    state = SessionState(choices=choices, engine_provider=_shared_engines, case_provider=cases.demo_case,
                         shared=shared, peek=peek, share_case=True, data_root=root, name="warm-up")
    state.param.trigger("load_demo")
    if state.error:
        raise RuntimeError(f"the demo could not be prepared: {state.error}")
    state.round0_now()


def peek(key: str) -> Any:
    """What :func:`shared` holds under ``key`` (None when nothing is built yet); builds nothing."""
    entry = pn.state.cache.get((key,))  # pn.state.as_cached stores (value, expiry) under (key,)
    return None if entry is None else entry[0]


def _shared_engines(choice: ModelChoice) -> EngineHandle:
    """The default engines: built once per server process (``pn.state.as_cached``), shared by all sessions."""
    return shared(f"rstn-engine:{choice.key}", lambda: get_engine(choice))


def _private_engines() -> Callable[[ModelChoice], EngineHandle]:
    """An engine provider for engines given to one App (not shared through the process-wide cache)."""
    handles: dict[str, EngineHandle] = {}
    lock = threading.Lock()

    def provide(choice: ModelChoice) -> EngineHandle:
        with lock:
            if choice.key not in handles:
                engine = choice.loader()
                handles[choice.key] = EngineHandle(choice, engine, describe_engine(choice, engine))
            return handles[choice.key]

    return provide
