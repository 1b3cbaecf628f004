"""The unrolled RSTN forward and its loss (SPEC §2.4): one training step's computation.

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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from rstn_core.geometry import crop_box
from rstn_core.models.losses import soft_dice_loss, unroll_weights
from rstn_core.models.rstn import RSTN
from rstn_core.training.stages import BOXES_FROM_PREDICTION, StageSpec
from rstn_core.types import BBox


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
