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
from rstn_core.precision import PrecisionChoice, resolve_precision
from rstn_core.training.checkpoint import LAST_CHECKPOINT, TrainState, load_checkpoint, restore_rng, save_checkpoint
from rstn_core.training.distributed import DistInfo, all_reduce_mean, broadcast_module, wrap_ddp
from rstn_core.training.metrics_log import MetricsLog, plot_curves
from rstn_core.training.stages import (
    BOXES_FROM_PREDICTION,
    STAGE_SPECS,
    StageSpec,
    check_stages,
    check_window,
    converged,
    moving_average,
    stage_lr,
    tail_length,
)
from rstn_core.types import BBox

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
RECORD_ONLY = ("precision",)  # checkpoint ``configs`` keys that describe the run but may differ on resume
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
def param_kind(name: str, param: nn.Parameter) -> str:
    """``"bias"`` (Caffe lr_mult 2, decay 0), ``"norm"`` (GroupNorm scales: decay 0) or ``"weight"``."""
    if name.endswith(".bias"):
        return "bias"
    return "norm" if param.ndim <= 1 else "weight"


def build_optimizer(model: RSTN, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (momentum) or Adam over parameter groups (the released prototxts' ``lr_mult``/``decay_mult``):
    lr for theta_C and ``fine_lr_factor`` x lr for theta_F and eta; biases ``bias_lr_factor`` x that
    (Caffe ``lr_mult: 2``) and no weight decay; GroupNorm scales (CPU presets) no decay either."""
    groups: dict[tuple[bool, str], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        fine = not name.startswith("coarse_net.")
        groups.setdefault((fine, param_kind(name, param)), []).append(param)
    param_groups = []
    for (fine, kind), params in sorted(groups.items()):
        lr = config.lr * (config.fine_lr_factor if fine else 1.0) * (config.bias_lr_factor if kind == "bias" else 1.0)
        param_groups.append({"params": params, "lr": lr, "base_lr": lr, "kind": kind, "fine": fine,
                             "weight_decay": config.weight_decay if kind == "weight" else 0.0})
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


def training_precision(device: torch.device, config: TrainConfig) -> PrecisionChoice:
    """``config.precision`` resolved for training on ``device`` (``rstn_core.precision``); fp16 gets a GradScaler."""
    return resolve_precision(config.precision, device, "training")


# ----------------------------------------------------------------------------- the loop
@dataclass
class TrainResult:
    model: RSTN
    state: TrainState
    finished: bool  # False when stopped by ``stop_after``
    converged_s: bool | None  # the convergence check after S (None when not run)
    precision: dict | None = None  # the resolved PrecisionChoice (as a dict) the run used


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

    One optimiser serves every stage (its momentum / Adam moments carry over, as the released
    PyTorch port keeps one optimiser and Caffe restores the solver); only an S restart, which
    re-initialises the weights, starts it afresh. The precision (``train_config.precision``) is
    resolved once and written to the metrics log (``precision`` record) and the bundle.
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
    precision = training_precision(device, tc)
    configs["precision"] = precision.to_dict()  # recorded in every checkpoint; not compared on resume
    log.info("%s: training precision %s (%s)", view, precision.resolved, precision.reason)
    optimizer, scaler = _fresh_optimizer(model, tc, device, precision)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)
        if scaler is not None and scaler_state:
            scaler.load_state_dict(scaler_state)
    converged_s = None

    def checkpoint():
        if info.is_main:
            save_checkpoint(out_dir / LAST_CHECKPOINT, method=tc.method, view=view, configs=configs,
                            train_state=state, model=model, optimizer=optimizer, generator=rng,
                            scaler_state=scaler.state_dict() if scaler is not None else None)

    while state.stage_index < len(tc.stages):
        stage = tc.stages[state.stage_index]
        spec = STAGE_SPECS[stage.name]
        bar = tqdm(total=stage.iterations, initial=state.iteration, desc=f"{view} {stage.name}",
                   disable=not (progress and info.is_main), leave=False)
        started = time.perf_counter()
        while state.iteration < stage.iterations:
            scale = stage_lr(1.0, stage, state.iteration)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * scale
            x, y = sample_batch(windows, tc.batch_size, rng, device)  # (N, 3, H, W) each
            with precision.autocast():
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
            if spec.checks_convergence:  # the raw total losses the check averages (see check_window)
                state.recent_fine_losses = (state.recent_fine_losses + [float(loss.detach())])[
                    -check_window(stage.iterations):]
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss.detach()):.4f}")
            if metrics is not None and (state.iteration % tc.log_every == 0 or state.iteration == stage.iterations):
                metrics.write({"step": state.global_step, "stage": stage.name, "iteration": state.iteration,
                               "loss": float(loss.detach()), **values, "lr": optimizer.param_groups[0]["lr"],
                               "time": round(time.perf_counter() - started, 4), "restarts": state.restarts,
                               "precision": precision.resolved})
            if state.global_step % tc.checkpoint_every == 0:
                checkpoint()
            if stop_after is not None and state.global_step >= stop_after:
                bar.close()
                return TrainResult(model, state, False, converged_s, precision.to_dict())
            if should_stop is not None and should_stop():
                checkpoint()
                log.info("%s: stopped on request at step %d (stage %s, iteration %d); checkpoint %s", view,
                         state.global_step, stage.name, state.iteration, out_dir / LAST_CHECKPOINT)
                bar.close()
                return TrainResult(model, state, False, converged_s, precision.to_dict())
        bar.close()
        if spec.checks_convergence and tc.convergence_check and stage.iterations > 0:
            converged_s = stage_s_converged(state.recent_fine_losses, stage.iterations, info)
            if not converged_s and (tc.max_restarts is None or state.restarts < tc.max_restarts):
                log.warning("%s: stage S did not converge (20-iteration mean total loss over its last 2%%: "
                            "mean must be < 0.4 and min < 0.35); re-initialising and restarting S (restart %d%s)",
                            view, state.restarts + 1,
                            "" if tc.max_restarts is None else f" of at most {tc.max_restarts}")
                reinit(model)
                broadcast_module(model, info)  # every rank continues from rank 0's re-initialised weights
                optimizer, scaler = _fresh_optimizer(model, tc, device, precision)
                state.restarts += 1
                state.iteration, state.recent_fine_losses = 0, []
                checkpoint()
                continue
            if not converged_s:
                log.warning("%s: stage S did not converge after %d restarts; continuing", view, state.restarts)
        state.stage_index += 1
        state.iteration, state.recent_fine_losses = 0, []
        checkpoint()
    if metrics is not None and metrics.path.exists():
        plot_curves(metrics.path, out_dir / CURVES_FILE)
    return TrainResult(model, state, True, converged_s, precision.to_dict())


def _fresh_optimizer(model: RSTN, tc: TrainConfig, device: torch.device, precision: PrecisionChoice):
    """-> (optimizer, GradScaler or None): a scaler only for fp16 autocast."""
    scaler = torch.amp.GradScaler(device.type) if precision.resolved == "fp16" else None
    return build_optimizer(model, tc), scaler


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


def check_resume_fits(payload: dict, path: str | Path, method: str, view: str, configs: dict[str, dict]) -> None:
    """Refuse to resume a checkpoint of another method, view or configuration (names the difference)."""
    from rstn_core.errors import CheckpointError

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
