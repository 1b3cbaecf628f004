"""When changes to the viewer's raw Bokeh models may be written at once, and when they must wait for the
document's own (locked) tick."""

from __future__ import annotations

from types import SimpleNamespace

import panel as pn

from app.doc_push import DocPush


class FakeDoc:
    def __init__(self) -> None:
        self.session_context = SimpleNamespace(session=None)
        self.ticks: list = []

    def add_next_tick_callback(self, fn) -> None:
        self.ticks.append(fn)


def test_changes_apply_at_once_while_the_page_is_built_and_on_the_locked_tick_once_it_has_a_session():
    doc, flushed = FakeDoc(), []
    pn.state.curdoc = doc
    try:
        push = DocPush(flushed.append)
    finally:
        pn.state.curdoc = None
    push.mark("case")  # the app is still building the page: the change travels with it
    assert flushed == [{"case"}] and doc.ticks == []
    doc.session_context.session = object()  # Bokeh made the ServerSession; the browser may not have loaded yet
    push.mark("shown")
    push.mark("slider")  # batched into the one pending tick
    assert flushed == [{"case"}] and len(doc.ticks) == 1
    doc.ticks.pop()()
    assert flushed == [{"case"}, {"shown", "slider"}]


def test_outside_a_server_changes_apply_at_once():
    flushed: list = []
    push = DocPush(flushed.append)
    push.mark("case")
    assert flushed == [{"case"}] and push.building
