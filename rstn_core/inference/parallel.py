"""Independent network calls side by side on the CPU (inter-op parallelism), results in order.

The ``cpu-small`` nets are narrow (4-32 channels on up-sampled slices): one call keeps one core busy but not
two (on this project's 2-core machine, two intra-op threads ran a coarse batch ~1.1x faster than one), while
two calls side by side ran ~1.6x faster (``benchmarks/RESULTS_engine.md``). The engine therefore sends the
batches of all its views through a small pool of worker threads, each with its share of torch's threads, and
accumulates the results in submission order, so the arrays equal a sequential run's.

The choice is made at run time from what the process has (``torch.get_num_threads()``, which follows
``OMP_NUM_THREADS``), or set by ``InferenceConfig.workers``, and recorded (:attr:`Parallelism.reason`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import torch

T = TypeVar("T")
R = TypeVar("R")

#: most workers ``auto`` starts: more views than three never run at once, and each worker holds a batch
MAX_AUTO_WORKERS = 4


@dataclass(frozen=True)
class Parallelism:
    """``workers`` calls at once, each with ``threads`` torch intra-op threads; ``reason``: why."""

    workers: int
    threads: int
    reason: str

    def describe(self) -> str:
        if self.workers <= 1:
            return f"{self.threads} thread{'s' if self.threads != 1 else ''}"
        return f"{self.workers} workers x {self.threads} thread{'s' if self.threads != 1 else ''}"


def resolve_parallelism(requested: int, device: torch.device, total_threads: int | None = None) -> Parallelism:
    """``requested`` workers (0 = auto) on ``device`` with ``total_threads`` torch threads (default: torch's).

    On an accelerator: one stream (the batches already fill it). On the CPU, auto: one worker per torch thread
    (at most :data:`MAX_AUTO_WORKERS`), the threads shared out between them.
    """
    total = max(1, int(total_threads if total_threads is not None else torch.get_num_threads()))
    if requested < 0:
        raise ValueError(f"workers must be >= 0 (0 = auto), got {requested}")
    if torch.device(device).type != "cpu":
        return Parallelism(1, total, f"{torch.device(device).type}: one stream, batched")
    if requested:
        return Parallelism(requested, max(1, total // requested), f"requested {requested} workers")
    workers = min(total, MAX_AUTO_WORKERS)
    return Parallelism(workers, max(1, total // workers),
                       f"auto on CPU: {total} torch thread(s) -> {workers} call(s) at once")


def ordered_map(fn: Callable[[T], R], tasks: Iterable[T], parallelism: Parallelism) -> Iterator[R]:
    """``fn(task)`` for each task, yielded in the tasks' order; at most ``2 x workers`` results wait at once.

    Workers are fresh threads: ``fn`` must enter its own thread-local torch state (``torch.inference_mode``,
    autocast). torch's default thread count for new threads is restored when the map ends.
    """
    if parallelism.workers <= 1:
        yield from map(fn, tasks)
        return
    original = torch.get_num_threads()

    def set_threads() -> None:
        torch.set_num_threads(parallelism.threads)

    ahead = 2 * parallelism.workers
    remaining = iter(tasks)
    try:
        with ThreadPoolExecutor(parallelism.workers, initializer=set_threads, thread_name_prefix="rstn-net") as pool:
            pending: deque[Future] = deque(pool.submit(fn, t) for t in itertools.islice(remaining, ahead))
            while pending:
                result = pending.popleft().result()
                for task in itertools.islice(remaining, 1):
                    pending.append(pool.submit(fn, task))
                yield result
    finally:
        torch.set_num_threads(original)  # the workers' set_num_threads also changed the default of new threads
