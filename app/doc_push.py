"""Changes to raw Bokeh models from any session callback: batched and applied on the session document's
own tick (in order, with the document lock) once the page is served, or at once while the page is being
built (they then travel with the page) and outside a server (a notebook, a test)."""

from __future__ import annotations

from collections.abc import Callable

import panel as pn


class DocPush:
    """``mark(*parts)`` collects what changed; ``flush(parts)`` is called once per tick with all of it."""

    def __init__(self, flush: Callable[[set[str]], None]) -> None:
        doc = pn.state.curdoc
        self._doc = doc if doc is not None and doc.session_context is not None else None
        self._flush = flush
        self._dirty: set[str] = set()
        self._scheduled = False
        # until the page is loaded the models are not yet served: changes then travel with the page
        self._building = self._doc is not None and not pn.state.loaded
        if self._building:
            pn.state.onload(self._loaded)

    @property
    def building(self) -> bool:
        """Changes go straight into the models (not served yet, or no server at all)."""
        return self._doc is None or self._building

    def _loaded(self) -> None:
        self._building = False

    def mark(self, *parts: str) -> None:
        self._dirty.update(parts)
        if self._scheduled:
            return
        if self._doc is None or self._building:  # a notebook, a test, or the page being built: apply now
            self._run()
            return
        self._scheduled = True
        self._doc.add_next_tick_callback(self._run)  # thread-safe; callbacks run in the order they were added

    def _run(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, set()
        if dirty:
            self._flush(dirty)
