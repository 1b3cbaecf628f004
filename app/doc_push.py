"""Changes to raw Bokeh models from any session callback: batched and applied on the session document's
own tick (in order, with the document lock) once the page has a server session, or at once while the page is
being built (they then travel with the page) and outside a server (a notebook, a test)."""

from __future__ import annotations

from collections.abc import Callable

import panel as pn

from .lazy import served


class DocPush:
    """``mark(*parts)`` collects what changed; ``flush(parts)`` is called once per tick with all of it."""

    def __init__(self, flush: Callable[[set[str]], None]) -> None:
        self._doc = pn.state.curdoc if served() else None
        self._flush = flush
        self._dirty: set[str] = set()
        self._scheduled = False

    @property
    def building(self) -> bool:
        """Changes go straight into the models: no server, or the page still being built (Bokeh creates the
        session's ``ServerSession`` only after the app has built the page). From then on a change from a
        callback or a task resumed after a worker thread must take the document lock, also before the
        browser reports the page loaded (a direct write then raised Bokeh's ``_pending_writes`` error)."""
        return self._doc is None or getattr(self._doc.session_context, "session", None) is None

    def mark(self, *parts: str) -> None:
        self._dirty.update(parts)
        if self._scheduled:
            return
        if self.building:  # a notebook, a test, or the page being built: apply now
            self._run()
            return
        self._scheduled = True
        self._doc.add_next_tick_callback(self._run)  # thread-safe; callbacks run in the order they were added

    def _run(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        if dirty:
            self._flush(dirty)
