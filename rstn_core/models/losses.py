"""Soft Dice loss and the unrolled-loss weights (SPEC §2.4, paper Eqns 1–4)."""

from __future__ import annotations

import torch

DICE_EPS = 1e-6


def soft_dice_loss(prob: torch.Tensor, target: torch.Tensor, eps: float = DICE_EPS) -> torch.Tensor:
    """Mean over samples of ``1 - (2 Σ y·p + eps) / (Σ (y + p) + eps)``.

    ``prob``: (N, ...) float in [0, 1]; ``target``: (N, ...) {0, 1} (bool or float), same shape.
    Sums run over every non-batch element of each sample. Returns a scalar tensor in [0, 1].
    """
    if prob.shape != target.shape:
        raise ValueError(f"prob shape {tuple(prob.shape)} differs from target shape {tuple(target.shape)}")
    p = prob.float().flatten(1)  # (N, K)
    y = target.to(p.dtype).flatten(1)  # (N, K)
    dice = (2.0 * (y * p).sum(1) + eps) / ((y + p).sum(1) + eps)  # (N,)
    return (1.0 - dice).mean()


def unroll_weights(unroll: int) -> tuple[float, ...]:
    """λ_0..λ_T for T unrolled iterations: λ_0 = 1/(2T+1), λ_t = 2/(2T+1) (they sum to 1)."""
    if int(unroll) < 1:
        raise ValueError(f"the number of unrolled iterations T must be >= 1, got {unroll}")
    t = int(unroll)
    return (1.0 / (2 * t + 1),) + (2.0 / (2 * t + 1),) * t
