"""The saliency transformation g (SPEC §2.2, paper §3.2, Table 1).

g maps the (N, 3, H, W) probability map of the previous iteration to (N, 3, H, W) weights that
multiply the input image slice by slice. Size-preserving convolutions, 3 -> 3 channels, ReLU
between layers, no final activation (weights may be negative). The last layer starts at zero
weights and a constant bias, so g starts as (a multiple of) the identity transform of X. In the
two-layer variants the first layer starts as in the release: Xavier weights (Caffe's ``xavier``
filler, U(-sqrt(3/fan_in), sqrt(3/fan_in)); with 3 -> 3 channels fan_in = fan_out, so it equals
``nn.init.xavier_uniform_``) and bias 1, so its ReLU passes the probabilities from the first step.
"""

from __future__ import annotations

import torch
from torch import nn

from rstn_core.config import SALIENCY_VARIANTS

CHANNELS = 3

# variant name -> kernel sizes of its layers
SALIENCY_KERNELS: dict[str, tuple[int, ...]] = {
    "1x1": (1,),
    "3x3": (3,),
    "5x5": (5,),
    "3x3-3x3": (3, 3),
    "3x3-5x5": (3, 5),
}


def build_saliency(variant: str = "3x3-3x3", bias: float = 1.0,
                   generator: torch.Generator | None = None) -> nn.Sequential:
    """g as an ``nn.Sequential``: ``(N, 3, H, W)`` probabilities in [0, 1] -> ``(N, 3, H, W)`` weights."""
    if variant not in SALIENCY_KERNELS:
        raise ValueError(f"unknown saliency variant {variant!r}; expected one of {SALIENCY_VARIANTS}")
    kernels = SALIENCY_KERNELS[variant]
    layers: list[nn.Module] = []
    for index, k in enumerate(kernels):
        if index:
            layers.append(nn.ReLU(inplace=True))
        layers.append(nn.Conv2d(CHANNELS, CHANNELS, k, padding=k // 2))
    first, last = layers[0], layers[-1]
    if first is not last:
        nn.init.xavier_uniform_(first.weight, generator=generator)  # type: ignore[arg-type]
        nn.init.constant_(first.bias, 1.0)  # type: ignore[arg-type]
    nn.init.zeros_(last.weight)  # type: ignore[arg-type]
    nn.init.constant_(last.bias, float(bias))  # type: ignore[arg-type]
    return nn.Sequential(*layers)
