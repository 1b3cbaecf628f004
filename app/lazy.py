"""Parts of the page built the first time the user opens them, or once the first screen is on show, not
with every session's first page.

``LazyTabs``: tabs whose content is built when the tab is first opened; a tab that is not open stops
updating (its panel's ``shown`` is False) and catches up when it is opened again. ``LazyCard``: a collapsed
card whose content is built when it is first expanded. ``AfterLoad``: a part built once the browser shows
the page (the sidebar's controls, the tabs), so a new session's first page carries the CT sooner (in a
classroom, 20 first pages are built before anyone's controls). A new session's first page then holds only what
its first screen shows (``tests/app/test_app_page.py`` bounds its model count).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import panel as pn
import param


class ShownPanel(pn.viewable.Viewer):
    """A panel that skips its updates while it is not on screen (``shown`` False): ``_content`` methods
    call :meth:`skip_if_hidden` first and depend on ``shown``, so opening the panel brings it up to date."""

    shown = param.Boolean(default=True, doc="on screen; False: updates are skipped until it is shown again")

    def skip_if_hidden(self) -> None:
        if not self.shown:
            raise param.Skip


def served() -> bool:
    """This code runs for a session of a Panel/Bokeh server (not in a notebook, a script or a test)."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


# sessions of this server process whose first page has not been shown by their browser yet: doc -> created at
_FIRST_PAGES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
MAX_WAIT_S = 5.0  # the longest a part waits for other sessions' first pages
FRESH_S = 3.0  # a first page not shown this long after its session began is not waited for (a closed tab, a probe)
POLL_MS = 50


def first_pages_waiting() -> int:
    """How many sessions of this process, begun in the last ``FRESH_S`` seconds, wait for their first page
    (AfterLoad parts wait for them)."""
    now = time.monotonic()
    return sum(1 for began in list(_FIRST_PAGES.values()) if now - began < FRESH_S)


class AfterLoad(pn.viewable.Viewer):
    """A part of the page built by ``build`` once the browser has shown the page (``pn.state.onload``) in a
    served session, at once elsewhere (a notebook, a test). Until then it holds ``placeholder`` in a column
    with the part's own layout (``**layout``: a fixed width keeps the rest of the page where it is).

    First pages go first: while other sessions of the process, begun in the last ``FRESH_S`` seconds, still
    wait for their first page (a classroom opening the app at once), the part waits for them, for at most
    ``MAX_WAIT_S``, on the document's own timer (with its lock), so every student sees the CT before anyone's
    controls are built. A session whose page is never shown (a closed tab, an HTTP probe) stops counting
    after ``FRESH_S``."""

    def __init__(self, build: Callable[[], Any], placeholder: str, **layout: Any) -> None:
        super().__init__()
        self._build = build
        self.content: Any = None
        self.holder = pn.Column(pn.pane.HTML(placeholder, css_classes=["after-load"]), **layout)
        if not served():
            self.build()
            return
        doc = pn.state.curdoc
        _FIRST_PAGES.setdefault(doc, time.monotonic())
        doc.on_session_destroyed(lambda context: _FIRST_PAGES.pop(doc, None))
        pn.state.onload(lambda: self._after_first_pages(doc, time.monotonic()))

    def _after_first_pages(self, doc, since: float) -> None:
        _FIRST_PAGES.pop(doc, None)  # this session's first page is shown
        if first_pages_waiting() and time.monotonic() - since < MAX_WAIT_S:
            doc.add_timeout_callback(lambda: self._after_first_pages(doc, since), POLL_MS)
            return
        self.build()

    def build(self) -> None:
        """Build the part now (once)."""
        if self.content is None:
            self.content = self._build()
            self.holder.objects = [self.content]

    def __panel__(self) -> pn.Column:
        return self.holder


class LazyTabs(pn.viewable.Viewer):
    """``pn.Tabs`` (dynamic) whose tab contents are built by ``builders`` on first opening."""

    def __init__(self, entries: Sequence[tuple[str, Callable[[], Any]]], **params: Any) -> None:
        super().__init__(**params)
        self._builders = [build for _, build in entries]
        self.built: dict[int, Any] = {}
        self._holders = [pn.Column(sizing_mode="stretch_width") for _ in entries]
        self.tabs = pn.Tabs(*((title, holder) for (title, _), holder in zip(entries, self._holders, strict=True)),
                            dynamic=True, sizing_mode="stretch_width")
        self.tabs.param.watch(self._on_active, "active")
        self._open(self.tabs.active)

    def _open(self, index: int) -> None:
        for i, panel in self.built.items():
            if isinstance(panel, ShownPanel):
                panel.shown = i == index
        if index not in self.built:
            self.built[index] = panel = self._builders[index]()
            self._holders[index].objects = [panel]

    def _on_active(self, event: param.parameterized.Event) -> None:
        self._open(int(event.new))

    def __panel__(self) -> pn.Tabs:
        return self.tabs


class LazyCard(pn.viewable.Viewer):
    """A collapsed ``pn.Card`` whose content is built by ``build`` when it is first expanded."""

    def __init__(self, build: Callable[[], Any], title: str, **card: Any) -> None:
        super().__init__()
        self._build = build
        self.content: Any = None
        self.card = pn.Card(title=title, collapsed=True, **card)
        self.card.param.watch(self._on_collapsed, "collapsed")

    def _on_collapsed(self, event: param.parameterized.Event) -> None:
        if not event.new and self.content is None:
            self.content = self._build()
            self.card.objects = [self.content]

    def __panel__(self) -> pn.Card:
        return self.card
