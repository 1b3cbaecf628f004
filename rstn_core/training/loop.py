"""Training one view (SPEC §3): :func:`train_view` puts the parts together.

The parts: the unrolled loss (:mod:`~rstn_core.training.unroll`), the optimiser
(:mod:`~rstn_core.training.optim`), :func:`~rstn_core.training.fit.fit` with its
:func:`~rstn_core.training.fit.train_step`, and the callbacks (:mod:`~rstn_core.training.callbacks`):
checkpoints, the metrics log, the stage-S restart, stopping.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rstn_core.config import DataConfig, ModelConfig, TrainConfig
from rstn_core.errors import CheckpointError
from rstn_core.models.rstn import RSTN, build_model
from rstn_core.training.callbacks import (
    CURVES_FILE,
    METRICS_FILE,
    Checkpointing,
    MetricsLogging,
    Reinit,
    StageRestart,
    StopAfter,
    StopOnRequest,
)
from rstn_core.training.checkpoint import TrainState, load_checkpoint
from rstn_core.training.distributed import DistInfo
from rstn_core.training.fit import Callback, fit
from rstn_core.types import Method

log = logging.getLogger(__name__)

__all__ = ["CURVES_FILE", "METRICS_FILE", "TrainResult", "check_resume_fits", "random_reinit", "train_view"]

RECORD_ONLY = ("precision",)  # checkpoint ``configs`` keys that describe the run but may differ on resume


@dataclass
class TrainResult:
    model: RSTN
    state: TrainState
    finished: bool  # False when stopped by ``stop_after`` or ``should_stop``
    converged_s: bool | None  # the convergence check after S (None when not run)
    precision: dict | None = None  # the resolved PrecisionChoice (as a dict) the run used


def random_reinit(method: Method, model_config: ModelConfig) -> Reinit:
    """The default re-initialisation for an S restart: fresh random weights from the given generator."""
    def reinit(model: RSTN, generator: torch.Generator) -> None:
        model.load_state_dict(build_model(method, model_config, generator).state_dict())
    return reinit


def train_view(model: RSTN, windows: Sequence, *, view: str, model_config: ModelConfig, data_config: DataConfig,
               train_config: TrainConfig, out_dir: str | Path, device: str | torch.device = "cpu",
               resume: str | Path | None = None, reinit: Reinit | None = None,
               dist_info: DistInfo | None = None, stop_after: int | None = None,
               progress: bool = True, should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train ``model`` through ``train_config.stages`` on ``windows`` (a sequence of (image, label) (3, H, W)).

    Writes ``out_dir/last.ckpt`` every ``checkpoint_every`` steps and at each stage end, metrics
    JSON lines and, at the end, ``curves.png`` (rank 0 only). ``resume``: a checkpoint to continue
    from exactly. ``stop_after``: stop once this global step is reached (tests, benchmarks).
    ``reinit(model, generator)``: the weights of an S restart (default: random, :func:`random_reinit`).
    The precision (``train_config.precision``) is resolved once and written to the metrics log
    (``precision`` record) and the bundle. ``should_stop``: asked after every iteration (e.g. a
    notebook's Stop button); when it answers True the run writes ``last.ckpt`` and returns unfinished,
    so ``resume`` continues from there.
    """
    tc, out_dir = train_config, Path(out_dir)
    configs = {"model_config": model_config.to_dict(), "data_config": data_config.to_dict(),
               "train_config": tc.to_dict()}
    payload = None
    if resume is not None:
        payload = load_checkpoint(resume)
        check_resume_fits(payload, resume, tc.method, view, configs)
        state = payload["train_state"]
        log.info("resuming %s from %s: stage %s, iteration %d", view, resume,
                 tc.stages[min(state.stage_index, len(tc.stages) - 1)].name, state.iteration)
    checkpointing = Checkpointing(out_dir, method=tc.method, view=view, configs=configs, every=tc.checkpoint_every)
    callbacks: list[Callback] = [MetricsLogging(out_dir, tc.log_every), checkpointing,
                                 StageRestart(reinit or random_reinit(tc.method, model_config), label=view)]
    if stop_after is not None:
        callbacks.append(StopAfter(stop_after))
    if should_stop is not None:
        callbacks.append(StopOnRequest(should_stop, checkpointing, label=view))
    run = fit(model, windows, tc, callbacks, device=device, dist_info=dist_info, resume=payload, progress=progress,
              label=view)
    return TrainResult(model, run.state, run.finished, run.converged_s, run.precision.to_dict())


def check_resume_fits(payload: dict, path: str | Path, method: str, view: str, configs: dict[str, dict]) -> None:
    """Refuse to resume a checkpoint of another method, view or configuration (names the difference)."""
    if payload["method"] != method or payload["view"] != view:
        raise CheckpointError(f"{path}: checkpoint is for {payload['method']}/{payload['view']}, "
                              f"this run is {method}/{view}")
    for key, ours in configs.items():
        if key in RECORD_ONLY:
            continue
        theirs = payload["configs"].get(key)
        if theirs != ours:
            diff = sorted(k for k in set(ours) | set(theirs or {}) if (theirs or {}).get(k) != ours.get(k))
            raise CheckpointError(f"{path}: {key} differs from this run's in {diff}; resume with the same settings")
