"""Parts of the page built after the first screen (``AfterLoad``): at once outside a server; in a served
session once its browser shows the page, and only after every other session's first page is out (bounded)."""

from __future__ import annotations

from types import SimpleNamespace

import panel as pn
import pytest

from app import lazy


class FakeDoc:
    """What AfterLoad uses of a served Bokeh document: a session context, destroy callbacks and a timer."""

    def __init__(self) -> None:
        self.session_context = SimpleNamespace(session=None, request=SimpleNamespace(arguments={}))
        self.destroyed: list = []
        self.timers: list = []

    def on_session_destroyed(self, fn) -> None:
        self.destroyed.append(fn)

    def add_timeout_callback(self, fn, ms) -> None:
        self.timers.append(fn)


@pytest.fixture
def onload(monkeypatch):
    """Captures ``pn.state.onload`` callbacks per document (the browser's 'page shown' is called by hand)."""
    loads: dict = {}
    monkeypatch.setattr(pn.state, "onload", lambda fn: loads.setdefault(pn.state.curdoc, []).append(fn))
    yield loads
    lazy._FIRST_PAGES.clear()


def _served_part(doc: FakeDoc, built: list, name: str) -> lazy.AfterLoad:
    pn.state.curdoc = doc
    try:
        return lazy.AfterLoad(lambda: built.append(name) or pn.pane.HTML(name), "loading…", width=320)
    finally:
        pn.state.curdoc = None


def test_outside_a_server_the_part_is_built_at_once():
    part = lazy.AfterLoad(lambda: pn.pane.HTML("controls"), "loading…", width=320)
    assert part.content is not None and part.holder.objects == [part.content] and part.holder.width == 320


def test_a_served_part_waits_for_its_page_and_for_every_other_first_page(onload):
    built: list = []
    first, second = FakeDoc(), FakeDoc()
    a = _served_part(first, built, "a")
    _served_part(second, built, "b")
    assert built == [] and a.content is None and "loading" in a.holder.objects[0].object  # the placeholder
    assert lazy.first_pages_waiting() == 2
    onload[first][0]()  # the first browser shows its page; the second still waits for its first page
    assert built == [] and len(first.timers) == 1 and lazy.first_pages_waiting() == 1
    onload[second][0]()  # the last first page is out: the second session's part is built at once
    assert built == ["b"] and lazy.first_pages_waiting() == 0
    first.timers.pop()()  # the first session's timer: nothing waits any more
    assert built == ["b", "a"] and a.holder.objects == [a.content]
    a.build()
    assert built == ["b", "a"]  # once only


def test_the_wait_is_bounded_and_a_closed_session_does_not_hold_others(onload, monkeypatch):
    built: list = []
    first, gone, stuck = FakeDoc(), FakeDoc(), FakeDoc()
    _served_part(first, built, "a")
    _served_part(gone, built, "gone")
    _served_part(stuck, built, "stuck")
    gone.destroyed[0](None)  # closed before its page was shown
    assert lazy.first_pages_waiting() == 2
    monkeypatch.setattr(lazy, "MAX_WAIT_S", 0.0)  # a session that never shows its page holds others this long
    onload[first][0]()
    assert built == ["a"] and first.timers == []


def test_a_page_never_shown_stops_counting_after_a_while(onload, monkeypatch):
    """An HTTP probe or a tab closed at once leaves a session whose page is never shown: after ``FRESH_S`` it
    no longer holds other sessions' controls (it had held them for the whole ``MAX_WAIT_S``)."""
    built: list = []
    probe, student = FakeDoc(), FakeDoc()
    _served_part(probe, built, "probe")
    _served_part(student, built, "student")
    assert lazy.first_pages_waiting() == 2
    monkeypatch.setattr(lazy, "FRESH_S", 0.0)  # both began longer ago than that
    assert lazy.first_pages_waiting() == 0
    onload[student][0]()
    assert built == ["student"] and student.timers == []
