"""The unrolled RSTN forward and loss (SPEC §2.4) and the per-view training loop (SPEC §3).

One training step of a stage (see :mod:`rstn_core.training.stages`)::

    P0 = sigmoid(coarse(X))                                   # (N, 3, H, W)
    for t in 1..T:
        box_i = crop_box(reference_i, K, jitter)              # per sample, not differentiable
        I_t   = X * g(P_{t-1})        (X itself without saliency)
        P_t   = sigmoid(uncrop(refine(crop(I_t, box_i))))     # BACKGROUND_LOGIT outside the box
    loss  = Σ λ_t · softDSC(Y, P_t) / Σ λ_t  over the terms the stage computes

with λ_0 = 1/(2T+1), λ_t = 2/(2T+1); for RSTN's S/I/J every term is present, so Σ λ_t = 1. The
reference is the ground truth (S, I, C2F fine) or P_{t-1} binarised at 0.5 (J), falling back to
the ground truth where that is empty. Gradients flow from the fine terms through the crop into g,
P0 and theta_C (stages I and J).

Batches: ``batch_size`` windows are drawn uniformly (with replacement) from the training windows;
windows of different cases may differ in size, so a batch is zero-padded at the bottom/right to
its largest (H, W) (0 = the bottom of the HU window; labels 0 there). With the paper's batch
size of 1 nothing is padded.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rstn_core.config import DataConfig, ModelConfig, TrainConfig
from rstn_core.geometry import crop_box
from rstn_core.models.losses import soft_dice_loss, unroll_weights
from rstn_core.models.rstn import RSTN, build_model
from rstn_core.training.checkpoint import LAST_CHECKPOINT, TrainState, load_checkpoint, restore_rng, save_checkpoint
from rstn_core.training.distributed import DistInfo, wrap_ddp
from rstn_core.training.metrics_log import MetricsLog, plot_curves
from rstn_core.training.stages import (
    BOXES_FROM_PREDICTION,
    STAGE_SPECS,
    StageSpec,
    check_stages,
    converged,
    stage_lr,
    tail_length,
)
from rstn_core.types import BBox

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"


# ----------------------------------------------------------------------------- unrolled forward
def choose_boxes(reference: torch.Tensor, truth: torch.Tensor, margin: int, jitter_prob: float,
                 rng: np.random.Generator) -> list[BBox]:
    """One crop box per sample from ``reference`` (N, 3, H, W) >= 0.5, else from ``truth``, else the whole slice."""
    ref = reference.detach().float().cpu().numpy()
    tru = truth.detach().float().cpu().numpy()
    h, w = ref.shape[-2:]
    boxes = []
    for i in range(ref.shape[0]):
        box = crop_box(ref[i], margin, 0.5, jitter_prob, rng)
        if box is None:
            box = crop_box(tru[i], margin, 0.5, jitter_prob, rng)
        boxes.append(box if box is not None else BBox(0, h, 0, w))
    return boxes


@dataclass
class UnrollOutput:
    loss: torch.Tensor  # scalar
    terms: dict[int, torch.Tensor]  # t -> soft-DSC loss of P_t (0 = coarse)
    boxes: list[list[BBox]]  # boxes[t-1][i]: box of sample i at iteration t


def unrolled_loss(model: RSTN, x: torch.Tensor, y: torch.Tensor, spec: StageSpec, unroll: int, margin: int,
                  jitter_prob: float, rng: np.random.Generator) -> UnrollOutput:
    """The stage's loss for images ``x`` (N, 3, H, W) in [0, 1] and targets ``y`` (N, 3, H, W) in {0, 1}."""
    weights = unroll_weights(unroll)
    terms: dict[int, torch.Tensor] = {}
    all_boxes: list[list[BBox]] = []
    prob = None
    if spec.trains_coarse or spec.uses_saliency or spec.boxes == BOXES_FROM_PREDICTION:
        prob = torch.sigmoid(model.coarse(x))  # P0 (N, 3, H, W)
        if spec.trains_coarse:
            terms[0] = soft_dice_loss(prob, y)
    if spec.trains_fine:
        for t in range(1, unroll + 1):
            reference = prob if spec.boxes == BOXES_FROM_PREDICTION else y
            boxes = choose_boxes(reference, y, margin, jitter_prob, rng)
            image = x * model.saliency(prob) if spec.uses_saliency else x  # I_t (N, 3, H, W)
            prob = torch.sigmoid(model.refine_in_boxes(image, boxes))  # P_t (N, 3, H, W)
            terms[t] = soft_dice_loss(prob, y)
            all_boxes.append(boxes)
    total = sum(weights[t] for t in terms)
    loss = sum(weights[t] * term for t, term in terms.items()) / total
    return UnrollOutput(loss, terms, all_boxes)  # type: ignore[arg-type]


class UnrolledStep(nn.Module):
    """``forward(x, y, spec, rng) -> (loss, terms)``: the unit DDP wraps (its forward syncs gradients)."""

    def __init__(self, model: RSTN, unroll: int, margin: int, jitter_prob: float) -> None:
        super().__init__()
        self.model = model
        self.unroll, self.margin, self.jitter_prob = unroll, margin, jitter_prob

    def forward(self, x, y, spec: StageSpec, rng: np.random.Generator):
        out = unrolled_loss(self.model, x, y, spec, self.unroll, self.margin, self.jitter_prob, rng)
        return out.loss, out.terms


# ----------------------------------------------------------------------------- optimiser and data
def build_optimizer(model: RSTN, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or Adam; lr for theta_C, ``fine_lr_factor`` x lr for theta_F and eta; no decay on biases."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        fine = not name.startswith("coarse_net.")
        groups.setdefault((fine, param.ndim <= 1), []).append(param)
    param_groups = []
    for (fine, is_bias), params in sorted(groups.items()):
        lr = config.lr * (config.fine_lr_factor if fine else 1.0)
        param_groups.append({"params": params, "lr": lr, "base_lr": lr,
                             "weight_decay": 0.0 if is_bias else config.weight_decay})
    if config.optimizer == "sgd":
        return torch.optim.SGD(param_groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.Adam(param_groups, lr=config.lr)


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


def amp_dtype(device: torch.device, config: TrainConfig) -> torch.dtype | None:
    """bf16 where supported, else fp16 (with a GradScaler), on CUDA only; None = full precision."""
    if device.type != "cuda" or not config.amp:
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ----------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    model: RSTN
    state: TrainState
    finished: bool  # False when stopped by ``stop_after``
    converged_s: bool | None  # the convergence check after S (None when not run)


def random_reinit(method: str, model_config: ModelConfig) -> Callable[[RSTN], None]:
    """The default re-initialisation for an S restart: fresh random weights (torch's RNG)."""
    def reinit(model: RSTN) -> None:
        model.load_state_dict(build_model(method, model_config).state_dict())
    return reinit


def train_view(model: RSTN, windows: Sequence, *, view: str, model_config: ModelConfig, data_config: DataConfig,
               train_config: TrainConfig, out_dir: str | Path, device: str | torch.device = "cpu",
               resume: str | Path | None = None, reinit: Callable[[RSTN], None] | None = None,
               dist_info: DistInfo | None = None, stop_after: int | None = None,
               progress: bool = True, should_stop: Callable[[], bool] | None = None) -> TrainResult:
    """Train ``model`` through ``train_config.stages`` on ``windows`` (a sequence of (image, label) (3, H, W)).

    Writes ``out_dir/last.ckpt`` every ``checkpoint_every`` steps and at each stage end, metrics
    JSON lines and, at the end, ``curves.png`` (rank 0 only). ``resume``: a checkpoint to continue
    from exactly. ``stop_after``: stop once this global step is reached (tests, benchmarks).
    ``should_stop``: asked after every iteration (e.g. a notebook's Stop button); when it answers True
    the run writes ``last.ckpt`` and returns unfinished, so ``resume`` continues from there.
    """
    tc, device, info = train_config, torch.device(device), dist_info or DistInfo()
    check_stages(tc.method, tc.stages)
    if model.method != tc.method:
        raise ValueError(f"model is {model.method!r} but the training config says {tc.method!r}")
    if len(windows) == 0:
        raise ValueError(f"no training windows for view {view}")
    out_dir = Path(out_dir)
    configs = {"model_config": model_config.to_dict(), "data_config": data_config.to_dict(),
               "train_config": tc.to_dict()}
    reinit = reinit or random_reinit(tc.method, model_config)
    rng = np.random.default_rng([tc.seed, info.rank])
    random.seed(tc.seed)
    np.random.seed(tc.seed)
    torch.manual_seed(tc.seed + info.rank)
    state, opt_state, scaler_state = TrainState(), None, None
    if resume is not None:
        payload = load_checkpoint(resume)
        check_resume_fits(payload, resume, tc.method, view, configs)
        model.load_state_dict(payload["model"])
        state, opt_state, scaler_state = payload["train_state"], payload["optimizer"], payload["scaler"]
        restore_rng(payload["rng"], rng)
        log.info("resuming %s from %s: stage %s, iteration %d", view, resume,
                 tc.stages[min(state.stage_index, len(tc.stages) - 1)].name, state.iteration)
    model.to(device).train()
    step_module = wrap_ddp(UnrolledStep(model, tc.unroll, tc.margin, tc.jitter_prob), info, device)
    metrics = MetricsLog(out_dir / METRICS_FILE) if info.is_main else None
    if metrics is not None and resume is not None:
        metrics.truncate_after(state.global_step)
    dtype = amp_dtype(device, tc)
    converged_s = None

    def checkpoint(optimizer, scaler):
        if info.is_main:
            save_checkpoint(out_dir / LAST_CHECKPOINT, method=tc.method, view=view, configs=configs,
                            train_state=state, model=model, optimizer=optimizer, generator=rng,
                            scaler_state=scaler.state_dict() if scaler is not None else None)

    while state.stage_index < len(tc.stages):
        stage = tc.stages[state.stage_index]
        spec = STAGE_SPECS[stage.name]
        optimizer = build_optimizer(model, tc)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
        if opt_state is not None:
            optimizer.load_state_dict(opt_state)
            if scaler is not None and scaler_state:
                scaler.load_state_dict(scaler_state)
            opt_state = scaler_state = None
        bar = tqdm(total=stage.iterations, initial=state.iteration, desc=f"{view} {stage.name}",
                   disable=not (progress and info.is_main), leave=False)
        started = time.perf_counter()
        while state.iteration < stage.iterations:
            scale = stage_lr(1.0, stage, state.iteration)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * scale
            x, y = sample_batch(windows, tc.batch_size, rng, device)  # (N, 3, H, W) each
            autocast = torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()
            with autocast:
                loss, terms = step_module(x, y, spec, rng)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            state.iteration += 1
            state.global_step += 1
            values = {f"loss_{t}": float(v.detach()) for t, v in terms.items()}
            if stage.name == "S" and 1 in terms:
                state.recent_fine_losses = (state.recent_fine_losses + [values["loss_1"]])[
                    -tail_length(stage.iterations):]
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if metrics is not None and (state.iteration % tc.log_every == 0 or state.iteration == stage.iterations):
                metrics.write({"step": state.global_step, "stage": stage.name, "iteration": state.iteration,
                               "loss": float(loss.detach()), **values, "lr": optimizer.param_groups[0]["lr"],
                               "time": round(time.perf_counter() - started, 4), "restarts": state.restarts})
            if state.global_step % tc.checkpoint_every == 0:
                checkpoint(optimizer, scaler)
            if stop_after is not None and state.global_step >= stop_after:
                bar.close()
                return TrainResult(model, state, False, converged_s)
            if should_stop is not None and should_stop():
                checkpoint(optimizer, scaler)
                log.info("%s: stopped on request at step %d (stage %s, iteration %d); checkpoint %s", view,
                         state.global_step, stage.name, state.iteration, out_dir / LAST_CHECKPOINT)
                bar.close()
                return TrainResult(model, state, False, converged_s)
        bar.close()
        if stage.name == "S" and tc.convergence_check and stage.iterations > 0:
            converged_s = converged(state.recent_fine_losses)
            if not converged_s and state.restarts < tc.max_restarts:
                log.warning("%s: stage S did not converge (last fine losses: mean %.3f, min %.3f); "
                            "re-initialising and restarting S (restart %d of at most %d)", view,
                            float(np.mean(state.recent_fine_losses)), min(state.recent_fine_losses),
                            state.restarts + 1, tc.max_restarts)
                reinit(model)
                state.restarts += 1
                state.iteration, state.recent_fine_losses = 0, []
                checkpoint(None, None)
                continue
            if not converged_s:
                log.warning("%s: stage S did not converge after %d restarts; continuing", view, state.restarts)
        state.stage_index += 1
        state.iteration, state.recent_fine_losses = 0, []
        checkpoint(None, None)
    if metrics is not None and metrics.path.exists():
        plot_curves(metrics.path, out_dir / CURVES_FILE)
    return TrainResult(model, state, True, converged_s)


def check_resume_fits(payload: dict, path: str | Path, method: str, view: str, configs: dict[str, dict]) -> None:
    """Refuse to resume a checkpoint of another method, view or configuration (names the difference)."""
    from rstn_core.errors import CheckpointError

    if payload["method"] != method or payload["view"] != view:
        raise CheckpointError(f"{path}: checkpoint is for {payload['method']}/{payload['view']}, "
                              f"this run is {method}/{view}")
    for key, ours in configs.items():
        theirs = payload["configs"].get(key)
        if theirs != ours:
            diff = sorted(k for k in set(ours) | set(theirs or {}) if (theirs or {}).get(k) != ours.get(k))
            raise CheckpointError(f"{path}: {key} differs from this run's in {diff}; resume with the same settings")
