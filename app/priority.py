"""Engine work yields the CPU to the pages: the threads that run rounds (and the start-up warm-up) lower
their own scheduling priority, so on a shared server a Step or a Compare never slows another session's page,
its slider or a newcomer's first page (and a browser on the same machine keeps its frames). No Panel here.

Linux keeps a nice value per thread and a thread starts with its creator's, so the threads torch starts
from a lowered thread (its OpenMP workers, the per-view workers) run lowered too. Raising a nice value needs
no privilege; nothing here ever lowers one. ``RSTN_APP_NICE`` sets the value (default 10; 0 turns it off).
Elsewhere than Linux this does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

NICE_ENV = "RSTN_APP_NICE"
DEFAULT_NICE = 10
log = logging.getLogger(__name__)


def background_nice() -> int:
    """The nice value engine threads run at: ``$RSTN_APP_NICE`` (0-19), else :data:`DEFAULT_NICE`."""
    raw = os.environ.get(NICE_ENV, "").strip()
    if not raw:
        return DEFAULT_NICE
    try:
        value = int(raw)
    except ValueError:
        log.warning("%s=%r is not a whole number from 0 to 19; using %d", NICE_ENV, raw, DEFAULT_NICE)
        return DEFAULT_NICE
    return min(max(value, 0), 19)


def lower_this_thread(nice: int | None = None) -> int | None:
    """Raise the calling thread's nice value to ``nice`` (default :func:`background_nice`) unless it is
    higher already; returns the thread's nice value afterwards, or None where threads have no nice value
    of their own (not Linux) or it is turned off (0)."""
    nice = background_nice() if nice is None else nice
    if nice <= 0 or not sys.platform.startswith("linux"):
        return None
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
        return os.getpriority(os.PRIO_PROCESS, tid)
    except OSError as exc:  # a sandbox that forbids it: run at the normal priority
        log.warning("could not lower the engine thread's priority: %s", exc)
        return None


async def in_background(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a worker thread (``asyncio.to_thread``) at the background priority."""

    def run() -> Any:
        lower_this_thread()
        return fn(*args)

    return await asyncio.to_thread(run)
