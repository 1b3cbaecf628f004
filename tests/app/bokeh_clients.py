"""Bokeh client sessions that open the app as a browser does, without a browser (the classroom benchmark
``benchmarks/classroom_clients.py`` and its short version in ``test_app_ui.py``)."""

from __future__ import annotations

import time

REST_PATCHES = 2  # the sidebar and the tabs arrive as one change each (app.page.App's AfterLoad parts)
WARM_PAGE_BYTES = 1_000_000  # a warm session's page carries the demo CT (int16) with it: well over 1 MB


def open_session(ws_url: str, t0: float, rest: bool = True, timeout: float = 600.0) -> dict:
    """Open one session as a browser would, over the WebSocket: ask for the document (PULL-DOC-REQ), then, with
    ``rest``, report the page shown (Bokeh's ``document_ready``, which starts the parts built after the first
    screen) and wait for the server's changes that bring those parts (``REST_PATCHES`` messages).

    Returns seconds since ``t0`` for ``page`` (the first page, with the CT, received) and ``rest`` (the rest
    of the page received; None without ``rest``), the page's size in bytes and a close callable (the session
    stays open until it is called, as a student's tab stays open)."""
    from bokeh.client.session import ClientSession
    from bokeh.document import Document
    from bokeh.document.events import MessageSentEvent
    from bokeh.events import DocumentReady

    session = ClientSession(websocket_url=ws_url)
    patches: list[float] = []
    session._handle_patch = lambda message: patches.append(time.perf_counter() - t0)  # not decoded
    session.connect()
    connection = session._connection
    reply = connection._send_message_wait_for_reply(connection._protocol.create("PULL-DOC-REQ"))
    page = time.perf_counter() - t0
    if reply is None or reply.header["msgtype"] == "ERROR":
        session.close()
        raise RuntimeError(f"no document: {None if reply is None else reply.content}")
    size = sum(memoryview(b.data).nbytes for b in reply.buffers) + len(str(reply.content))
    out = {"page": page, "rest": None, "bytes": size, "close": session.close}
    if rest:
        ready = MessageSentEvent(Document(), "bokeh_event", DocumentReady())
        # sent without waiting for the server's OK: changes that arrive before it would be dropped then
        connection._loop.add_callback(connection.send_message, connection._protocol.create("PATCH-DOC", [ready]))
        connection._loop_until(lambda: len(patches) >= REST_PATCHES or time.perf_counter() - t0 > timeout)
        out["rest"] = patches[REST_PATCHES - 1] if len(patches) >= REST_PATCHES else None
    return out
