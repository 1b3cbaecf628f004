"""The training loop of one view as small parts (SPEC §3): :func:`train_step` and :func:`fit`.

:func:`fit` runs the stages of a :class:`TrainConfig` over training windows, one :func:`train_step` per
iteration, and leaves everything else to callbacks (:mod:`rstn_core.training.callbacks`): checkpoints,
the metrics log, the restart of stage S when the released convergence check fails, stopping on request.

Randomness comes from explicit generators only, both seeded by ``(seed, rank)`` and saved in checkpoints:
a NumPy ``Generator`` (batches, crop jitter) and a ``torch.Generator`` on the device (dropout). Nothing
seeds or reads a global random state.

Batches: ``batch_size`` windows are drawn uniformly (with replacement) from the training windows;
windows of different cases may differ in size, so a batch is zero-padded at the bottom/right to
its largest (H, W) (0 = the bottom of the HU window; labels 0 there). With the paper's batch
size of 1 nothing is padded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from rstn_core.config import StageConfig, TrainConfig
from rstn_core.models.fcn import FCN8s
from rstn_core.models.rstn import RSTN
from rstn_core.precision import PrecisionChoice
from rstn_core.training.checkpoint import TrainState, restore_rng
from rstn_core.training.distributed import DistInfo, wrap_ddp
from rstn_core.training.optim import fresh_optimizer, set_stage_lr, training_precision
from rstn_core.training.stages import STAGE_SPECS, StageSpec, check_stages, check_window
from rstn_core.training.unroll import UnrolledStep


def sample_batch(windows: Sequence, batch_size: int, rng: np.random.Generator,
                 device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` random windows -> (x (N, 3, H, W), y (N, 3, H, W)) float32, zero-padded to the largest."""
    items = [windows[int(i)] for i in rng.integers(len(windows), size=batch_size)]
    h = max(img.shape[-2] for img, _ in items)
    w = max(img.shape[-1] for img, _ in items)
    x = np.zeros((batch_size, 3, h, w), np.float32)
    y = np.zeros((batch_size, 3, h, w), np.float32)
    for i, (img, lab) in enumerate(items):
        x[i, :, : img.shape[-2], : img.shape[-1]] = img
        y[i, :, : lab.shape[-2], : lab.shape[-1]] = lab
    return torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)


@dataclass
class Fit:
    """One fit in progress, read (and, for restarts, changed) by its callbacks."""

    model: RSTN
    config: TrainConfig
    device: torch.device
    info: DistInfo
    precision: PrecisionChoice
    rng: np.random.Generator  # batches and crop-box jitter
    torch_rng: torch.Generator  # dropout, on the device
    optimizer: Any = None
    scaler: Any = None  # torch.amp.GradScaler for fp16, else None
    state: TrainState = field(default_factory=TrainState)
    resumed: bool = False
    stage: StageConfig | None = None
    spec: StageSpec | None = None
    loss: float = math.nan  # total loss of the last step
    terms: dict[int, float] = field(default_factory=dict)  # t -> soft-DSC loss of P_t at the last step
    stage_started: float = 0.0  # perf_counter when the current stage (or its restart) began
    converged_s: bool | None = None  # the convergence check's answer (None: not run)
    finished: bool = False

    def new_optimizer(self) -> None:
        """A fresh optimiser (and grad scaler): at the start and after a restart re-initialised the weights."""
        self.optimizer, self.scaler = fresh_optimizer(self.model, self.config, self.device, self.precision)


class Callback:
    """What :func:`fit` calls around its steps; every hook is optional."""

    def on_start(self, fit: Fit) -> None:
        """Before the first step (after a resume restored the state)."""

    def on_step(self, fit: Fit) -> bool:
        """After every step; True stops the run now, unfinished (later callbacks are not asked)."""
        return False

    def restart_stage(self, fit: Fit) -> bool:
        """When a stage's iterations are done; True runs the stage again from iteration 0."""
        return False

    def on_stage_end(self, fit: Fit) -> None:
        """After the state moved on: to the next stage, or back to iteration 0 of a restarted one."""

    def on_end(self, fit: Fit) -> None:
        """After the last stage (not when a callback stopped the run)."""


def train_step(fit: Fit, step_module: torch.nn.Module, windows: Sequence) -> tuple[torch.Tensor, dict]:
    """One optimiser update of the current stage: the stage's lr, a random batch, the unrolled loss
    (``step_module``: :class:`UnrolledStep`, maybe DDP-wrapped), backward, step. -> (loss, terms)."""
    set_stage_lr(fit.optimizer, fit.stage, fit.state.iteration)
    x, y = sample_batch(windows, fit.config.batch_size, fit.rng, fit.device)  # (N, 3, H, W) each
    with fit.precision.autocast():
        loss, terms = step_module(x, y, fit.spec, fit.rng)
    fit.optimizer.zero_grad(set_to_none=True)
    if fit.scaler is not None:
        fit.scaler.scale(loss).backward()
        fit.scaler.step(fit.optimizer)
        fit.scaler.update()
    else:
        loss.backward()
        fit.optimizer.step()
    return loss, terms


def start_fit(model: RSTN, config: TrainConfig, device: str | torch.device = "cpu", dist_info: DistInfo | None = None,
              resume: dict | None = None) -> Fit:
    """A :class:`Fit` at its first step, or where the checkpoint payload ``resume`` left off."""
    check_stages(config.method, config.stages)
    if model.method != config.method:
        raise ValueError(f"model is {model.method!r} but the training config says {config.method!r}")
    device, info = torch.device(device), dist_info or DistInfo()
    torch_rng = torch.Generator(device=device)
    torch_rng.manual_seed(config.seed + info.rank)
    run = Fit(model, config, device, info, training_precision(device, config),
              np.random.default_rng([config.seed, info.rank]), torch_rng)
    if resume is not None:
        model.load_state_dict(resume["model"])
        run.state, run.resumed = resume["train_state"], True
        restore_rng(resume["rng"], run.rng, run.torch_rng)
    model.to(device).train()
    run.new_optimizer()
    if resume is not None and resume.get("optimizer") is not None:
        run.optimizer.load_state_dict(resume["optimizer"])
        if run.scaler is not None and resume.get("scaler"):
            run.scaler.load_state_dict(resume["scaler"])
    return run


def fit(model: RSTN, windows: Sequence, config: TrainConfig, callbacks: Sequence[Callback] = (), *,
        device: str | torch.device = "cpu", dist_info: DistInfo | None = None, resume: dict | None = None,
        progress: bool = False, label: str = "") -> Fit:
    """Train ``model`` through ``config.stages`` on ``windows`` (a sequence of (image, label), each (3, H, W)
    float32: image in [0, 1], label in {0, 1}). ``resume``: a checkpoint payload to continue from exactly.

    One optimiser serves every stage (its momentum / Adam moments carry over, as the released PyTorch port
    keeps one optimiser and Caffe restores the solver); only a restart, which re-initialises the weights,
    starts it afresh. Returns the :class:`Fit` (``finished`` False when a callback stopped it).
    """
    if len(windows) == 0:
        raise ValueError(f"no training windows{' for view ' + label if label else ''}")
    run = start_fit(model, config, device, dist_info, resume)
    step_module = wrap_ddp(UnrolledStep(model, config.unroll, config.margin, config.jitter_prob), run.info, run.device)
    for callback in callbacks:
        callback.on_start(run)
    set_dropout_generator(model, run.torch_rng)
    try:
        while run.state.stage_index < len(config.stages):
            if not _run_stage(run, step_module, windows, callbacks, progress, label):
                return run
            restart = any([callback.restart_stage(run) for callback in callbacks])
            if not restart:
                run.state.stage_index += 1
            run.state.iteration, run.state.recent_fine_losses = 0, []
            for callback in callbacks:
                callback.on_stage_end(run)
        run.finished = True
        for callback in callbacks:
            callback.on_end(run)
        return run
    finally:
        set_dropout_generator(model, None)


def _run_stage(run: Fit, step_module, windows: Sequence, callbacks: Sequence[Callback], progress: bool,
               label: str) -> bool:
    """The remaining iterations of the current stage; False when a callback stopped the run."""
    state = run.state
    run.stage = run.config.stages[state.stage_index]
    run.spec = STAGE_SPECS[run.stage.name]
    bar = tqdm(total=run.stage.iterations, initial=state.iteration, desc=f"{label} {run.stage.name}".strip(),
               disable=not (progress and run.info.is_main), leave=False)
    run.stage_started = time.perf_counter()
    try:
        while state.iteration < run.stage.iterations:
            loss, terms = train_step(run, step_module, windows)
            state.iteration += 1
            state.global_step += 1
            run.loss, run.terms = float(loss.detach()), {t: float(v.detach()) for t, v in terms.items()}
            if run.spec.checks_convergence:  # the raw total losses the check averages (see check_window)
                state.recent_fine_losses = (state.recent_fine_losses + [run.loss])[-check_window(run.stage.iterations):]
            bar.update(1)
            bar.set_postfix(loss=f"{run.loss:.4f}")
            if any(callback.on_step(run) for callback in callbacks):
                return False
        return True
    finally:
        bar.close()


def set_dropout_generator(model: torch.nn.Module, generator: torch.Generator | None) -> None:
    """Draw the dropout masks of ``model``'s FCNs from ``generator`` (None: back to torch's global one)."""
    for module in model.modules():
        if isinstance(module, FCN8s):
            module.dropout_generator = generator
