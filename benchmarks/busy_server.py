"""A newcomer's page while other sessions compute: the engine threads' priority (``RSTN_APP_NICE``), A/B.

For each setting in turn (``--nice 0 10``, ``--repeat`` times, alternately) a fresh ``panel serve app/`` is
started with that ``RSTN_APP_NICE``; two headless-Chromium sessions open the demo and press *Compare with
baseline*; meanwhile a Bokeh client session opens the page ``--opens`` times (``tests/app/bokeh_clients.py``:
the first page with the CT, then the rest). Needs Debian's ``chromium``.

    .venv/bin/python benchmarks/busy_server.py [--nice 0 10] [--repeat 2] [--opens 6]
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


def _open_in_thread(ws_url: str) -> dict:
    """One client session (its own event loop: Playwright's sync API holds this thread's)."""
    from bokeh_clients import open_session

    out: dict = {}

    def run() -> None:
        session = open_session(ws_url, time.perf_counter())
        session["close"]()
        out.update(session)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return out


def one_run(nice: int, opens: int, busy_sessions: int = 2) -> dict:
    from app_speed import CHROMIUM, _open_ready, served_app
    from playwright.sync_api import sync_playwright
    from test_app_ui import FLAGS

    os.environ["RSTN_APP_NICE"] = str(nice)  # the server started next inherits it
    with served_app() as (port, _), sync_playwright() as p:
        url, ws_url = f"http://localhost:{port}/app", f"ws://127.0.0.1:{port}/app/ws"
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        pages = [_open_ready(browser.new_context(viewport={"width": 1480, "height": 1000}), url)[0]
                 for _ in range(busy_sessions)]
        idle = [_open_in_thread(ws_url)["page"] for _ in range(3)]
        for page in pages:
            page.get_by_role("button", name="Compare with baseline").click()
        time.sleep(1.5)
        busy = []
        for _ in range(opens):
            busy.append(_open_in_thread(ws_url))
            time.sleep(0.5)
        still = all("running" in page.get_by_test_id("status").inner_text() for page in pages)
        browser.close()
    return {"nice": nice, "idle_page_s": idle, "busy_page_s": [b["page"] for b in busy],
            "busy_rest_s": [b["rest"] for b in busy if b["rest"] is not None], "compares_still_running": still,
            "load_average": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nice", type=int, nargs="+", default=[0, 10])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--opens", type=int, default=6)
    args = parser.parse_args(argv)
    med = statistics.median
    for _ in range(args.repeat):
        for nice in args.nice:
            r = one_run(nice, args.opens)
            print(f"RSTN_APP_NICE={nice}: idle first page median {med(r['idle_page_s']):.2f} s; during two Compares "
                  f"first page median {med(r['busy_page_s']):.2f} s (max {max(r['busy_page_s']):.2f}), the rest "
                  f"median {med(r['busy_rest_s']):.2f} s (max {max(r['busy_rest_s']):.2f}); Compares still running "
                  f"at the end: {r['compares_still_running']}; load average {r['load_average']:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
