"""The optimiser of a training run (the released prototxts' ``lr_mult`` / ``decay_mult``) and its precision."""

from __future__ import annotations

import torch
from torch import nn

from rstn_core.config import StageConfig, TrainConfig
from rstn_core.models.rstn import RSTN
from rstn_core.precision import PrecisionChoice, resolve_precision
from rstn_core.training.stages import stage_lr


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


def fresh_optimizer(model: RSTN, config: TrainConfig, device: torch.device, precision: PrecisionChoice):
    """-> (optimizer, GradScaler or None): a scaler only for fp16 autocast."""
    scaler = torch.amp.GradScaler(device.type) if precision.resolved == "fp16" else None
    return build_optimizer(model, config), scaler


def set_stage_lr(optimizer: torch.optim.Optimizer, stage: StageConfig, iteration: int) -> None:
    """Every group's lr at ``iteration`` of ``stage``: its base lr, halved as the stage says."""
    scale = stage_lr(1.0, stage, iteration)
    for group in optimizer.param_groups:
        group["lr"] = group["base_lr"] * scale


def training_precision(device: torch.device, config: TrainConfig) -> PrecisionChoice:
    """``config.precision`` resolved for training on ``device`` (``rstn_core.precision``); fp16 gets a GradScaler."""
    return resolve_precision(config.precision, device, "training")
