"""Classroom load on the server alone: N Bokeh client sessions open the app at once (no browsers).

Each client opens a WebSocket session on ``/app`` (the server runs the app for it: the page build, the shared
demo case and its cached round 0) and asks for the document (PULL-DOC-REQ); the time until the reply, which
carries the whole page including the CT and mask arrays, is what the server needs before a browser could draw
anything. The reply is not decoded (that would need the app's generated component classes in this process).
In a classroom the browsers run on the students' machines; here they would take ~90 % of the two cores
(``benchmarks/app_speed.py`` measures that case with Chromium).

    .venv/bin/python benchmarks/classroom_clients.py --sessions 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # app_speed (which puts tests/app on the path)


def pull_reply_seconds(ws_url: str, t0: float) -> tuple[float, int]:
    """Open one session and wait for the document: (seconds since ``t0``, reply size in bytes)."""
    from bokeh.client.session import ClientSession

    session = ClientSession(websocket_url=ws_url)
    session.connect()
    try:
        connection = session._connection  # the public pull() would decode the page
        reply = connection._send_message_wait_for_reply(connection._protocol.create("PULL-DOC-REQ"))
        if reply is None or reply.header["msgtype"] == "ERROR":
            raise RuntimeError(f"no document: {None if reply is None else reply.content}")
        size = sum(memoryview(b.data).nbytes for b in reply.buffers) + len(str(reply.content))
        return time.perf_counter() - t0, size
    finally:
        session.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1, help="classrooms in a row on the same warm server")
    args = parser.parse_args(argv)
    from app_speed import served_app

    with served_app() as (port, _):
        ws_url = f"ws://127.0.0.1:{port}/app/ws"
        print(f"load average {os.getloadavg()[0]:.2f}; warm-up session (cold cache: round 0 computed once) ...")
        first, size = pull_reply_seconds(ws_url, time.perf_counter())
        print(f"warm-up: {first:.1f} s, page {size / 1e6:.1f} MB")
        for r in range(args.repeat):
            times: list[float] = [0.0] * args.sessions
            t0 = time.perf_counter()

            def one(i: int, t0: float = t0, times: list[float] = times) -> None:
                times[i] = pull_reply_seconds(ws_url, t0)[0]

            threads = [threading.Thread(target=one, args=(i,)) for i in range(args.sessions)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            print(f"classroom {r + 1}: {args.sessions} sessions, page received after median "
                  f"{statistics.median(times):.1f} s, max {max(times):.1f} s "
                  f"({', '.join(f'{t:.1f}' for t in sorted(times))}); load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
