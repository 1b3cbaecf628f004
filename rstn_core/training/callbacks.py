"""What a training run does around its steps, as :class:`~rstn_core.training.fit.Callback`\\ s.

* :class:`Checkpointing`: ``last.ckpt`` every ``checkpoint_every`` steps and at every stage end (rank 0).
* :class:`MetricsLogging`: a JSON line every ``log_every`` iterations and at a stage's last one; the curves
  PNG at the end (rank 0).
* :class:`StageRestart`: the released convergence check after stage S (``StageSpec.checks_convergence``);
  when it fails, re-initialise the weights and run the stage again (at most ``max_restarts`` times).
* :class:`StopAfter` (tests, benchmarks) and :class:`StopOnRequest` (a notebook's Stop button: the
  checkpoint is written first, so ``resume`` continues from there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from rstn_core.models.rstn import RSTN
from rstn_core.training.checkpoint import LAST_CHECKPOINT, save_checkpoint
from rstn_core.training.distributed import DistInfo, all_reduce_mean, broadcast_module
from rstn_core.training.fit import Callback, Fit
from rstn_core.training.metrics_log import MetricsLog, plot_curves
from rstn_core.training.stages import converged, moving_average, tail_length

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"

#: ``reinit(model, generator)``: new weights for a restart, drawn from ``generator``
Reinit = Callable[[RSTN, torch.Generator], None]


class Checkpointing(Callback):
    """``folder/last.ckpt`` (everything to resume bit-exactly) on rank 0; :meth:`save` for other callbacks."""

    def __init__(self, folder: str | Path, *, method: str, view: str, configs: dict[str, dict], every: int) -> None:
        self.path, self.method, self.view, self.every = Path(folder) / LAST_CHECKPOINT, method, view, every
        self.configs = dict(configs)

    def on_start(self, fit: Fit) -> None:
        self.configs["precision"] = fit.precision.to_dict()  # recorded in every checkpoint; not compared on resume

    def save(self, fit: Fit) -> None:
        if fit.info.is_main:
            save_checkpoint(self.path, method=self.method, view=self.view, configs=self.configs,
                            train_state=fit.state, model=fit.model, optimizer=fit.optimizer, generator=fit.rng,
                            torch_generator=fit.torch_rng,
                            scaler_state=fit.scaler.state_dict() if fit.scaler is not None else None)

    def on_step(self, fit: Fit) -> bool:
        if fit.state.global_step % self.every == 0:
            self.save(fit)
        return False

    def on_stage_end(self, fit: Fit) -> None:
        self.save(fit)


class MetricsLogging(Callback):
    """``folder/metrics.jsonl`` records and, at the end, ``folder/curves.png`` (rank 0 only)."""

    def __init__(self, folder: str | Path, every: int) -> None:
        self.folder, self.every, self.metrics = Path(folder), every, None

    def on_start(self, fit: Fit) -> None:
        log.info("%s: training precision %s (%s)", self.folder.name, fit.precision.resolved, fit.precision.reason)
        if fit.info.is_main:
            self.metrics = MetricsLog(self.folder / METRICS_FILE)
            if fit.resumed:
                self.metrics.truncate_after(fit.state.global_step)

    def on_step(self, fit: Fit) -> bool:
        state, stage = fit.state, fit.stage
        if self.metrics is not None and (state.iteration % self.every == 0 or state.iteration == stage.iterations):
            self.metrics.write({"step": state.global_step, "stage": stage.name, "iteration": state.iteration,
                                "loss": fit.loss, **{f"loss_{t}": v for t, v in fit.terms.items()},
                                "lr": fit.optimizer.param_groups[0]["lr"],
                                "time": round(time.perf_counter() - fit.stage_started, 4),
                                "restarts": state.restarts, "precision": fit.precision.resolved})
        return False

    def on_end(self, fit: Fit) -> None:
        if self.metrics is not None and self.metrics.path.exists():
            plot_curves(self.metrics.path, self.folder / CURVES_FILE)


def restart_generator(seed: int, rank: int, restart: int) -> torch.Generator:
    """The CPU generator restart number ``restart`` draws its weights from: fixed by (seed, rank, restart),
    so a resumed run re-initialises exactly as an uninterrupted one."""
    state = np.random.SeedSequence([seed, rank, restart]).generate_state(1, np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class StageRestart(Callback):
    """After a stage whose spec ``checks_convergence`` (S): re-initialise and restart it when the check fails."""

    def __init__(self, reinit: Reinit, label: str = "") -> None:
        self.reinit, self.label = reinit, label

    def restart_stage(self, fit: Fit) -> bool:
        tc, state = fit.config, fit.state
        if not (fit.spec.checks_convergence and tc.convergence_check and fit.stage.iterations > 0):
            return False
        fit.converged_s = stage_s_converged(state.recent_fine_losses, fit.stage.iterations, fit.info)
        if fit.converged_s:
            return False
        if tc.max_restarts is not None and state.restarts >= tc.max_restarts:
            log.warning("%s: stage S did not converge after %d restarts; continuing", self.label, state.restarts)
            return False
        log.warning("%s: stage S did not converge (20-iteration mean total loss over its last 2%%: "
                    "mean must be < 0.4 and min < 0.35); re-initialising and restarting S (restart %d%s)",
                    self.label, state.restarts + 1, "" if tc.max_restarts is None else f" of at most {tc.max_restarts}")
        self.reinit(fit.model, restart_generator(tc.seed, fit.info.rank, state.restarts))
        broadcast_module(fit.model, fit.info)  # every rank continues from rank 0's re-initialised weights
        fit.new_optimizer()
        state.restarts += 1
        return True


def stage_s_converged(raw_losses: Sequence[float], iterations: int, info: DistInfo) -> bool:
    """The released convergence check after stage S, the same decision on every rank.

    ``raw_losses``: the last ``check_window(iterations)`` total weighted losses of this rank. Their
    20-iteration moving averages over the last 2% of S are averaged across ranks (all-reduce), so
    every rank restarts or goes on together; then mean < 0.4 and min < 0.35 must hold.
    """
    averages = moving_average(raw_losses)[-tail_length(iterations):]
    averages = all_reduce_mean(averages, info)
    ok = converged(averages)
    log.info("stage S check: 20-iteration mean loss over the last %d iterations: mean %.3f, min %.3f -> %s",
             len(averages), float(np.mean(averages)) if averages else float("nan"),
             min(averages) if averages else float("nan"), "converged" if ok else "not converged")
    return ok


class StopAfter(Callback):
    """Stop once the global step reaches ``step`` (no checkpoint: tests use it as a crash)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, fit: Fit) -> bool:
        return fit.state.global_step >= self.step


class StopOnRequest(Callback):
    """Ask ``should_stop`` after every step; when it answers True, checkpoint and stop."""

    def __init__(self, should_stop: Callable[[], bool], checkpointing: Checkpointing, label: str = "") -> None:
        self.should_stop, self.checkpointing, self.label = should_stop, checkpointing, label

    def on_step(self, fit: Fit) -> bool:
        if not self.should_stop():
            return False
        self.checkpointing.save(fit)
        log.info("%s: stopped on request at step %d (stage %s, iteration %d); checkpoint %s", self.label,
                 fit.state.global_step, fit.stage.name, fit.state.iteration, self.checkpointing.path)
        return True
