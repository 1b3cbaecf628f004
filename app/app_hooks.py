"""Bokeh's server hooks for ``panel serve app/``: when the server has loaded, the demo every session opens
with (its case, its preparation and round 0 with the built-in model) is built in a background thread, so the
first visitor does not wait for it (``RSTN_APP_WARM=0`` turns this off)."""

from __future__ import annotations

import logging
import os
import threading
import time

READY = "RSTN Studio: the demo case and its round 0 are ready"  # the log line tests and benchmarks wait for
log = logging.getLogger("rstn.app")
log.setLevel(logging.INFO)  # the server's log shows when the demo is ready


def _warm() -> None:
    t0 = time.perf_counter()
    try:
        from .page import warm_demo  # imported here: with --num-procs the server forks after loading this file
        from .priority import lower_this_thread

        lower_this_thread()  # the warm-up never slows a first visitor's page
        warm_demo()
    except Exception:  # noqa: BLE001 - a failed warm-up leaves the first session to build (and report) it
        log.exception("warming the demo failed; the first session will build it")
        return
    log.info("%s (%.1f s)", READY, time.perf_counter() - t0)


def on_server_loaded(server_context) -> None:
    if os.environ.get("RSTN_APP_WARM", "1") != "0":
        threading.Thread(target=_warm, name="rstn-warm-demo", daemon=True).start()
