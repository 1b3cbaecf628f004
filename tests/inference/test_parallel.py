"""Network calls side by side: the run-time choice, the order of results, torch's threads left as found."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from rstn_core.inference.parallel import MAX_AUTO_WORKERS, Parallelism, ordered_map, resolve_parallelism


@pytest.mark.parametrize("threads, requested, expected", [
    (2, 0, (2, 1)), (1, 0, (1, 1)), (16, 0, (MAX_AUTO_WORKERS, 16 // MAX_AUTO_WORKERS)), (2, 3, (3, 1)), (8, 2, (2, 4)),
])
def test_the_cpu_choice_follows_the_threads_torch_has(threads, requested, expected):
    chosen = resolve_parallelism(requested, torch.device("cpu"), total_threads=threads)
    assert (chosen.workers, chosen.threads) == expected
    assert chosen.reason  # recorded: why this choice


def test_an_accelerator_gets_one_stream_and_bad_counts_are_refused():
    assert resolve_parallelism(0, torch.device("cuda"), total_threads=8).workers == 1
    with pytest.raises(ValueError, match="workers must be >= 0"):
        resolve_parallelism(-1, torch.device("cpu"))


def test_results_come_in_task_order_with_a_bounded_number_in_flight():
    running, most = [0], [0]
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.02 if i % 2 == 0 else 0.001)  # even tasks finish after the odd ones started later
        with lock:
            running[0] -= 1
        return i * i

    out = list(ordered_map(work, range(12), Parallelism(3, 1, "test")))
    assert out == [i * i for i in range(12)]
    assert 1 < most[0] <= 3


def test_workers_leave_torchs_thread_count_as_they_found_it():
    before = torch.get_num_threads()
    seen = list(ordered_map(lambda _: torch.get_num_threads(), range(4), Parallelism(2, 1, "test")))
    assert seen == [1, 1, 1, 1]
    assert torch.get_num_threads() == before
    fresh: list[int] = []
    thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert fresh == [before]  # a thread started afterwards gets the original default again


def test_an_error_in_a_worker_reaches_the_caller():
    def fail(i: int) -> int:
        if i == 2:
            raise RuntimeError("boom in task 2")
        return i

    with pytest.raises(RuntimeError, match="boom in task 2"):
        list(ordered_map(fail, range(5), Parallelism(2, 1, "test")))
