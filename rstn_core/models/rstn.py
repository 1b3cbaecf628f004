"""RSTN (Yu et al., CVPR 2018) and its stage-wise baseline C2F (Zhou et al., MICCAI 2017).

Both are the same small container of parts (STYLE habit 1): a coarse FCN-8s (theta_C, full
slices), a fine FCN-8s (theta_F, crops) and, for RSTN, the saliency transformation g (eta).
The protocol the inference engine and the trainer use:

* ``coarse(x)``: ``(N, 3, H, W)`` image in [0, 1] -> ``(N, 3, H, W)`` logits.
* ``saliency(prob)``: ``(N, 3, H, W)`` probabilities in [0, 1] -> ``(N, 3, H, W)`` weights
  (ones for C2F, which has no saliency module).
* ``refine(x_crop)``: ``(N, 3, h, w)`` (saliency-weighted) crop -> ``(N, 3, h, w)`` logits.
* ``uses_saliency``: whether ``saliency`` is learned (False for C2F).

The recurrent unrolling and its loss live in :mod:`rstn_core.training.loop`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from rstn_core.config import ModelConfig
from rstn_core.geometry import BACKGROUND_LOGIT, crop, uncrop
from rstn_core.models.fcn import FCN8s, build_fcn8s
from rstn_core.models.saliency import build_saliency
from rstn_core.types import TRAINED_METHODS, BBox, Method

METHODS = TRAINED_METHODS


class RSTN(nn.Module):
    """Coarse net + fine net (+ saliency g). ``saliency_net=None`` gives the C2F baseline."""

    def __init__(self, coarse_net: FCN8s, fine_net: FCN8s, saliency_net: nn.Module | None = None) -> None:
        super().__init__()
        self.coarse_net = coarse_net
        self.fine_net = fine_net
        self.saliency_net = saliency_net

    @property
    def uses_saliency(self) -> bool:
        return self.saliency_net is not None

    @property
    def method(self) -> Method:
        return Method.RSTN if self.uses_saliency else Method.C2F

    def coarse(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) image -> (N, 3, H, W) coarse logits."""
        return self.coarse_net(x)

    def saliency(self, prob: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) probabilities -> (N, 3, H, W) weights for ``x * weights``."""
        if self.saliency_net is None:
            return torch.ones_like(prob)
        return self.saliency_net(prob)

    def refine(self, x_crop: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) crop -> (N, 3, h, w) fine logits."""
        return self.fine_net(x_crop)

    def refine_in_boxes(self, x: torch.Tensor, boxes: Sequence[BBox]) -> torch.Tensor:
        """Crop each sample at its own box, refine, paste back: (N, 3, H, W) -> (N, 3, H, W) logits.

        Outside a box the logit is :data:`~rstn_core.geometry.BACKGROUND_LOGIT`. Differentiable
        with respect to ``x`` (the box choice itself is not).
        """
        if len(boxes) != x.shape[0]:
            raise ValueError(f"{len(boxes)} boxes for a batch of {x.shape[0]} samples")
        shape = tuple(x.shape[-2:])
        out = [uncrop(self.refine(crop(x[i : i + 1], box)), box, shape, BACKGROUND_LOGIT)  # (1, 3, H, W)
               for i, box in enumerate(boxes)]
        return torch.cat(out, dim=0)  # (N, 3, H, W)


def build_coarse_fcn(config: ModelConfig, generator: torch.Generator | None = None):
    """The coarse FCN-8s: as ``config``, with ``coarse_input_upsample`` when it is set."""
    if config.coarse_input_upsample is None:
        return build_fcn8s(config, generator)
    return build_fcn8s(config.replace(input_upsample=config.coarse_input_upsample), generator)


def build_rstn(config: ModelConfig, generator: torch.Generator | None = None) -> RSTN:
    """RSTN: two FCN-8s sized by ``config`` and the saliency variant ``config.saliency``."""
    return RSTN(build_coarse_fcn(config, generator), build_fcn8s(config, generator),
                build_saliency(config.saliency, config.saliency_bias, generator))


def build_c2f(config: ModelConfig, generator: torch.Generator | None = None) -> RSTN:
    """The C2F baseline: the same container without saliency (``uses_saliency`` is False)."""
    return RSTN(build_coarse_fcn(config, generator), build_fcn8s(config, generator), None)


def build_model(method: Method | str, config: ModelConfig, generator: torch.Generator | None = None) -> RSTN:
    """``method`` RSTN or C2F -> a freshly initialised model, its random weights drawn from ``generator``
    (an explicit ``torch.Generator``: the same seed gives the same weights; None: torch's global one)."""
    parsed = Method.parse(method)
    if parsed not in TRAINED_METHODS:
        raise ValueError(f"method {method!r} has no model of its own; expected {Method.expected(TRAINED_METHODS)}")
    build = build_rstn if parsed is Method.RSTN else build_c2f
    if generator is None:
        return build(config)
    # the layers' constructors draw default weights (all redrawn from ``generator``) from torch's global
    # generator: run them on a fork of it, so building a model leaves the global random state as it was
    with torch.random.fork_rng(devices=[]):
        return build(config, generator)
