"""Engine work runs at a lower CPU priority than the pages (app.priority)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import pytest

from app import priority

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice values are Linux's")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_thread(fn):
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("value", fn()))
    thread.start()
    thread.join()
    return out["value"]


@linux_only
def test_a_lowered_thread_and_the_threads_it_starts_run_at_the_background_nice_value():
    base = _nice()
    if base >= 19:
        pytest.skip("this process runs at the lowest priority already")
    target = min(base + 5, 19)

    def lowered():
        got = priority.lower_this_thread(target)
        return got, _nice(), _in_thread(_nice)  # a thread it starts (as torch starts its workers) inherits

    got, own, child = _in_thread(lowered)
    assert got == own == child == target
    assert _nice() == base  # the caller (the server's event loop) is untouched


@linux_only
def test_engine_work_runs_in_a_lowered_worker_thread(monkeypatch):
    monkeypatch.setenv(priority.NICE_ENV, "7")
    caller, before = threading.get_native_id(), _nice()
    thread, nice = asyncio.run(priority.in_background(lambda: (threading.get_native_id(), _nice())))
    assert thread != caller and nice >= 7
    assert _nice() == before  # the caller (the event loop) was not lowered


@linux_only
def test_a_thread_is_never_raised_back():
    def twice():
        priority.lower_this_thread(9)
        return priority.lower_this_thread(4)  # asking for less leaves it where it is

    assert _in_thread(twice) >= 9


@pytest.mark.parametrize("raw, expected", [("", priority.DEFAULT_NICE), ("3", 3), ("25", 19), ("-4", 0),
                                           ("high", priority.DEFAULT_NICE)])
def test_rstn_app_nice_is_read_and_bounded(monkeypatch, raw, expected):
    monkeypatch.setenv(priority.NICE_ENV, raw)
    assert priority.background_nice() == expected


def test_zero_turns_it_off(monkeypatch):
    monkeypatch.setenv(priority.NICE_ENV, "0")
    assert _in_thread(priority.lower_this_thread) is None
