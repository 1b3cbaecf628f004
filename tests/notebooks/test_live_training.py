"""The hooks behind train.ipynb's Stop button: ``should_stop`` leaves a resumable checkpoint, and
:class:`BackgroundRun` runs, stops and waits for a training run in a thread."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from rstn_training_synthetic import blob_windows  # noqa: E402

from rstn_core.config import DataConfig, StageConfig  # noqa: E402
from rstn_core.models.rstn import build_model  # noqa: E402
from rstn_core.training.background import BackgroundRun  # noqa: E402
from rstn_core.training.checkpoint import LAST_CHECKPOINT, load_checkpoint  # noqa: E402
from rstn_core.training.loop import train_view  # noqa: E402
from rstn_core.training.recipes import get_recipe  # noqa: E402


def _setup():
    recipe = get_recipe("tiny", "rstn")
    # checkpoint_every far away: only the stop itself can leave a checkpoint at step 3
    tc = recipe.train.replace(batch_size=2, checkpoint_every=1000, log_every=1, lr=1e-2,
                              stages=(StageConfig("S", 2), StageConfig("I", 3), StageConfig("J", 2)))
    return recipe.model.replace(dropout=0.0), tc


def _train(out, windows, mc, tc, **kw):
    torch.manual_seed(5)
    return train_view(build_model("rstn", mc), windows, view="axial", model_config=mc, data_config=DataConfig(),
                      train_config=tc, out_dir=out, progress=False, **kw)


def test_should_stop_leaves_a_checkpoint_that_resumes_to_the_same_end(tmp_path):
    windows = blob_windows(4, h=19, w=21)
    mc, tc = _setup()
    asked = []

    def stop_at_three() -> bool:
        asked.append(1)
        return len(asked) >= 3

    stopped = _train(tmp_path / "run", windows, mc, tc, should_stop=stop_at_three)
    assert not stopped.finished and stopped.state.global_step == 3
    ckpt = load_checkpoint(tmp_path / "run" / LAST_CHECKPOINT)
    assert ckpt["train_state"].global_step == 3  # written at the stop, not at a checkpoint_every multiple
    resumed = _train(tmp_path / "run", windows, mc, tc, resume=tmp_path / "run" / LAST_CHECKPOINT)
    full = _train(tmp_path / "full", windows, mc, tc)
    assert resumed.finished and resumed.state.global_step == full.state.global_step == 7
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


def test_background_run_stops_on_request_and_returns_the_result():
    started = threading.Event()

    def work(n, *, should_stop):
        started.set()
        for _ in range(n):
            if should_stop():
                return None
            threading.Event().wait(0.01)
        return "done"

    run = BackgroundRun(work, 10_000).start()
    assert started.wait(10) and run.running and run.status == "running"
    run.stop()
    assert run.wait(timeout=30) is None and run.done and run.status == "stopped (resumable)"
    assert BackgroundRun(work, 3).start().wait(timeout=30) == "done"


def test_background_run_hands_the_error_to_wait():
    def fail(*, should_stop):
        raise ValueError("data folder /nowhere has no cases")

    run = BackgroundRun(fail).start()
    with pytest.raises(ValueError, match="/nowhere"):
        run.wait(timeout=30)
    assert run.status.startswith("failed: data folder /nowhere")


def test_watch_calls_back_while_running_and_once_after_the_end():
    calls = []

    def work(*, should_stop):
        while not should_stop():
            threading.Event().wait(0.01)
        return "stopped"

    run = BackgroundRun(work).start().watch(lambda: calls.append(run.running), every=0.05)
    deadline = threading.Event()
    while len(calls) < 2:
        deadline.wait(0.02)
    run.stop()
    assert run.wait(timeout=30) == "stopped"
    for _ in range(100):
        if calls[-1] is False:
            break
        deadline.wait(0.05)
    assert calls[0] is True and calls[-1] is False  # live updates, then the final one after the end


def test_wait_async_keeps_the_event_loop_free_and_returns_the_result():
    """A notebook's ``await run.wait_async()``: other tasks on the loop (Panel's periodic refresh, comm
    messages) keep running while it waits; ``run.wait()`` would hold the loop until the end."""
    import asyncio

    from rstn_core.training.background import stage_progress

    def work(*, should_stop):
        while not should_stop():
            threading.Event().wait(0.01)
        return "stopped"

    async def main():
        run = BackgroundRun(work).start()
        ticks = []

        async def ticker():  # stands in for the chart refresh; it stops the run after 5 ticks
            while run.running:
                ticks.append(1)
                if len(ticks) == 5:
                    run.stop()
                await asyncio.sleep(0.01)

        task = asyncio.create_task(ticker())
        result = await asyncio.wait_for(run.wait_async(poll=0.01), timeout=30)
        await task
        return result, len(ticks)

    result, ticks = asyncio.run(main())
    assert result == "stopped" and ticks >= 5
    records = [{"step": 1, "stage": "S", "iteration": 1, "loss": 0.9}, {"precision": "fp32"},
               {"step": 2, "stage": "S", "iteration": 2, "loss": 0.8}, {"step": 3, "stage": "I", "iteration": 1}]
    assert stage_progress(records) == {"S": 2, "I": 1}


def test_wait_async_cancelled_stops_the_run():
    import asyncio

    def work(*, should_stop):
        while not should_stop():
            threading.Event().wait(0.01)

    run = BackgroundRun(work).start()

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(run.wait_async(poll=0.01), timeout=0.2)  # cancels the wait

    asyncio.run(main())
    assert run.stop_requested and run.done and run.status == "stopped (resumable)"
