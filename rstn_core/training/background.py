"""A training run in a background thread that a notebook can watch and stop (no Panel, no widgets here).

``notebooks/train.ipynb`` starts :func:`rstn_core.training.run.train_dataset` through
:class:`BackgroundRun`, so the kernel stays free for the Stop button and the live loss chart, and
waits for it before the cells that need the bundle::

    run = BackgroundRun(train_dataset, data_dir, out, plan).start()   # passes should_stop=<the stop flag>
    pn.state.add_periodic_callback(refresh_chart, period=1000)       # on the kernel's event loop
    bundle_path = await run.wait_async()                              # None when stopped: resume later

In Jupyter the wait must be ``await run.wait_async()``, not ``run.wait()``: a blocking wait holds the
kernel's event loop, so nothing reaches the page while it waits (Panel's comm is opened by a message
from the browser that the kernel only reads on its loop, and ipykernel >= 7.4 reads comm messages
during an ``await``) and the Stop button's click is read only after the run has ended.
Outside Jupyter, :meth:`BackgroundRun.watch` calls a callback from a helper thread instead.

Stopping is cooperative: the loop asks ``should_stop`` after every iteration and leaves
``last.ckpt`` behind (see :func:`rstn_core.training.loop.train_view`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)


class BackgroundRun:
    """``fn(*args, should_stop=..., **kwargs)`` in a daemon thread; ``stop()`` asks it to stop, ``wait()`` joins."""

    def __init__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        self._fn, self._args, self._kwargs = fn, args, kwargs
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"background-{getattr(fn, '__name__', 'run')}",
                                        daemon=True)
        self.result: Any = None
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.seconds: float | None = None

    def _main(self) -> None:
        try:
            self.result = self._fn(*self._args, should_stop=self._stop.is_set, **self._kwargs)
        except BaseException as exc:  # handed to wait(); a thread cannot raise into the notebook
            self.error = exc
            log.error("background run failed: %s", exc)
        finally:
            self.seconds = time.perf_counter() - (self.started_at or time.perf_counter())

    def start(self) -> BackgroundRun:
        self.started_at = time.perf_counter()
        self._thread.start()
        return self

    def watch(self, callback: Callable[[], Any], every: float = 1.0) -> BackgroundRun:
        """Call ``callback()`` every ``every`` seconds from a helper thread while the run lasts, and once after it
        ends (a live chart; a failing callback is logged, not raised)."""
        def loop() -> None:
            while True:
                finished = self._thread.join(every) or not self._thread.is_alive()
                try:
                    callback()
                except Exception as exc:  # the display must not take the run down
                    log.warning("watch callback failed: %s", exc)
                if finished:
                    return

        threading.Thread(target=loop, name="background-watch", daemon=True).start()
        return self

    def stop(self) -> None:
        """Ask the run to stop after its current iteration (it writes a checkpoint first)."""
        if not self._stop.is_set():
            log.info("stop requested")
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def done(self) -> bool:
        return self.started_at is not None and not self._thread.is_alive()

    @property
    def status(self) -> str:
        if self.started_at is None:
            return "not started"
        if self.running:
            return "stopping" if self.stop_requested else "running"
        if self.error is not None:
            return f"failed: {self.error}"
        return "stopped (resumable)" if self.stop_requested and self.result is None else "finished"

    def wait(self, timeout: float | None = None) -> Any:
        """Block until the run ends (a kernel interrupt here stops it cleanly); -> its result, re-raising its error.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self._thread.is_alive():
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"the background run is still {self.status} after {timeout} s")
                self._thread.join(0.2)
        except KeyboardInterrupt:
            self.stop()
            self._thread.join()
        if self.error is not None:
            raise self.error
        return self.result

    async def wait_async(self, poll: float = 0.2) -> Any:
        """``wait()`` for an event loop (a notebook's ``await``): polls every ``poll`` seconds, so the loop keeps
        serving callbacks and comm messages meanwhile; -> the run's result, re-raising its error.

        Cancelling it (a kernel interrupt) stops the run first, which then leaves its checkpoint.
        """
        try:
            while self._thread.is_alive():
                await asyncio.sleep(poll)
        except (asyncio.CancelledError, KeyboardInterrupt):
            self.stop()
            self._thread.join()
            raise
        if self.error is not None:
            raise self.error
        return self.result


def stage_progress(records: Iterable[dict[str, Any]]) -> dict[str, int]:
    """Metrics records (``metrics.jsonl``) -> stage name -> its last logged iteration (progress bars)."""
    done: dict[str, int] = {}
    for record in records:
        if "stage" in record and "iteration" in record:
            done[record["stage"]] = int(record["iteration"])
    return done
