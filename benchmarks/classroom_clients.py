"""Classroom load on the server alone: N Bokeh client sessions open the app at once (no browsers).

The server warms up first (``app/app_hooks.py`` builds the demo case and its round 0 when it starts). Each
client then does over the WebSocket what a browser does: it opens a session on ``/app`` (the server runs the
app: the first page, with the shared demo case and its cached round 0), asks for the document (PULL-DOC-REQ;
the reply carries the first page with the CT and round-0 arrays: what a browser needs to draw the CT), then
reports the page shown (``document_ready``), upon which the server builds the controls and the tabs and
sends them (two PATCH-DOC messages: "the rest"). Replies are timed, not decoded (that would need the app's
generated component classes in this process). In a classroom the browsers run on the students' machines;
here they would take ~90 % of the two cores (``benchmarks/app_speed.py`` measures that case with Chromium).

    .venv/bin/python benchmarks/classroom_clients.py --sessions 20 [--repeat 3] [--num-procs 2] [--reuse-sessions]
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=1, help="classrooms in a row on the same warm server")
    parser.add_argument("--num-procs", type=int, default=1, help="server processes (panel serve --num-procs)")
    parser.add_argument("--reuse-sessions", action="store_true",
                        help="serve with panel's --reuse-sessions (make app does not)")
    args = parser.parse_args(argv)
    from app_speed import served_app
    from bokeh_clients import WARM_PAGE_BYTES, open_session

    # the options of `make app` (Makefile) unless asked otherwise
    options = ("--num-procs", str(args.num_procs), *(("--reuse-sessions",) if args.reuse_sessions else ()))
    with served_app(options=options) as (port, proc):
        import psutil

        server = psutil.Process(proc.pid)

        def rss_mb() -> float:  # the server's processes (one with --num-procs 1)
            return sum(p.memory_info().rss for p in [server, *server.children(recursive=True)]) / 2**20

        ws_url = f"ws://127.0.0.1:{port}/app/ws"
        print(f"panel serve app/ {' '.join(options)}; load average {os.getloadavg()[0]:.2f}; the server has built "
              "the demo's round 0 at start")
        for attempt in range(2):  # the first session also loads the app's modules, the second shows a warm page
            single = open_session(ws_url, time.perf_counter())
            single["close"]()
            print(f"single session {attempt + 1}: page after {single['page']:.2f} s ({single['bytes'] / 1e6:.2f} MB), "
                  f"the rest after {single['rest']:.2f} s")
        print(f"  server memory {rss_mb():.0f} MB")
        if single["bytes"] < WARM_PAGE_BYTES:
            raise RuntimeError(f"a warm page should carry the demo CT (> {WARM_PAGE_BYTES / 1e6:.0f} MB), "
                               f"got {single['bytes'] / 1e6:.2f} MB")
        for r in range(args.repeat):
            results: list[dict] = [{}] * args.sessions
            t0 = time.perf_counter()

            def one(i: int, t0: float = t0, results: list[dict] = results) -> None:
                results[i] = open_session(ws_url, t0)

            threads = [threading.Thread(target=one, args=(i,)) for i in range(args.sessions)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            pages = sorted(x["page"] for x in results)
            rest = sorted(x["rest"] for x in results if x["rest"] is not None)
            sizes = [x["bytes"] for x in results]
            print(f"classroom {r + 1}: {args.sessions} sessions; first page (with the CT) after median "
                  f"{statistics.median(pages):.1f} s, max {max(pages):.1f} s ({', '.join(f'{t:.1f}' for t in pages)}); "
                  f"the rest of the page: {len(rest)} sessions, median {statistics.median(rest):.1f} s, "
                  f"max {max(rest):.1f} s; pages {min(sizes) / 1e6:.2f}-{max(sizes) / 1e6:.2f} MB; "
                  f"load average {os.getloadavg()[0]:.2f}")
            open_mb = rss_mb()
            for x in results:
                x["close"]()
            time.sleep(2)
            print(f"  server memory: {open_mb:.0f} MB with the {args.sessions} open, "
                  f"{rss_mb():.0f} MB 2 s after they closed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
