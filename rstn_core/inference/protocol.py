"""The small protocol the engine talks to (STYLE habit 5): any object with these methods works.

All tensors are ``(N, 3, H, W)`` float on the engine's device; channel ``c`` is slice ``c`` of a
3-slice window (SPEC §1.3). ``rstn_core.models.rstn.RSTN`` satisfies it; tests pass stubs.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class ViewModel(Protocol):
    """The networks of one view: coarse f(.; theta_C), saliency g(.; eta), fine f(.; theta_F)."""

    uses_saliency: bool  # False for the C2F baseline: the fine input is the raw image crop

    def coarse(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 3, H, W) float in [0, 1] -> logits (N, 3, H, W)."""
        ...

    def saliency(self, prob: torch.Tensor) -> torch.Tensor:
        """prob: (N, 3, H, W) float in [0, 1] -> weights (N, 3, H, W), unbounded."""
        ...

    def refine(self, x_crop: torch.Tensor) -> torch.Tensor:
        """x_crop: (N, 3, h, w) float -> logits (N, 3, h, w)."""
        ...
