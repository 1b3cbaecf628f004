"""FCN-8s on a VGG16 trunk (Long et al. 2015), the segmentation network f of RSTN (SPEC §2.1).

The classic Caffe layout: conv1_1 is padded by 100 pixels so that any input size, down to a
single pixel, survives the five ceil-mode poolings and the 7x7 fc6; the three score maps are
fused with the classic crop offsets (5 for pool4, 9 for pool3, 31 for the final map) and
up-sampled with fixed bilinear kernels, so the output has exactly the input's size.

The trunk's modules sit in ``features`` with torchvision's VGG16 indices (``features.0`` is
conv1_1, ``features.28`` is conv5_3), which makes ImageNet weights load without renaming
(:mod:`rstn_core.models.weights`). ``width`` scales every channel count for small presets.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rstn_core.config import ModelConfig

NUM_OUTPUTS = 3  # one map per input slice (j-1, j, j+1)

# VGG16 configuration "D": channels per conv, "M" = 2x2 max-pool (ceil mode).
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
NORMS = ("none", "group")
FC_CHANNELS = 4096
CROP_POOL4, CROP_POOL3, CROP_FINAL = 5, 9, 31  # Caffe FCN-8s offsets for conv1_1 padding 100


def scaled(channels: int, width: float) -> int:
    """Channel count after the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))


def bilinear_kernel(channels: int, size: int) -> torch.Tensor:
    """(channels, 1, size, size) bilinear up-sampling kernel (FCN's ``upsample_filt``), per channel."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    filt = (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)
    kernel = torch.as_tensor(filt, dtype=torch.float32)
    return kernel.expand(channels, 1, size, size).clone()


class BilinearUpsample(nn.Module):
    """Fixed (non-learned) transposed-convolution up-sampling by ``stride`` with a 2*stride kernel.

    Channel-wise (grouped): equivalent to Caffe's diagonal bilinear deconvolution with lr_mult 0.
    The kernel is a buffer, so it is saved with the state dict but never optimised.
    """

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.channels = channels
        self.register_buffer("kernel", bilinear_kernel(channels, 2 * stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (N, C, h, w) -> (N, C, (h - 1) * s + 2s, (w - 1) * s + 2s)
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=self.stride, groups=self.channels)


def center_crop_at(x: torch.Tensor, offset: int, height: int, width: int) -> torch.Tensor:
    """``x[..., offset:offset+height, offset:offset+width]`` (Caffe's Crop layer)."""
    if x.shape[-2] < offset + height or x.shape[-1] < offset + width:
        raise ValueError(f"cannot crop {height}x{width} at offset {offset} from a map of shape {tuple(x.shape)}")
    return x[..., offset : offset + height, offset : offset + width]


def make_vgg16_features(width: float, norm: str = "none") -> nn.Sequential:
    """VGG16 conv1_1..pool5; conv1_1 padded by 100.

    ``norm="none"`` is the paper's network, with torchvision's module indices. ``norm="group"``
    (the CPU presets) puts a one-group GroupNorm between each convolution and its ReLU: trained
    from random initialisation, the un-normalised network did not learn even a synthetic disk on
    a grey background within 1000 Adam steps, while the normalised one did within 300
    (docs/results/training_notes.md). GroupNorm does not depend on the batch, so training with
    batch 1 and inference in batches agree.
    """
    if norm not in NORMS:
        raise ValueError(f"unknown normalisation {norm!r}; expected one of {NORMS}")
    layers: list[nn.Module] = []
    in_channels = 3
    for item in VGG16_LAYOUT:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
            continue
        out_channels = scaled(int(item), width)
        padding = 100 if not layers else 1
        layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=padding))
        if norm == "group":
            layers.append(nn.GroupNorm(1, out_channels))
        layers.append(nn.ReLU(inplace=True))
        in_channels = out_channels
    return nn.Sequential(*layers)


def pool_indices(features: nn.Sequential) -> tuple[int, int]:
    """Indices in ``features`` of the pool3 and pool4 modules."""
    pools = [i for i, layer in enumerate(features) if isinstance(layer, nn.MaxPool2d)]
    return pools[2], pools[3]


class FCN8s(nn.Module):
    """FCN-8s: ``(N, 3, H, W)`` image in [0, 1] -> ``(N, 3, H, W)`` logits, any ``H, W >= 1``."""

    def __init__(self, width: float = 1.0, dropout: float = 0.5, input_downsample: int = 1, norm: str = "none",
                 input_upsample: int = 1, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.width = float(width)
        self.norm = norm
        self.input_downsample = int(input_downsample)
        self.input_upsample = int(input_upsample)
        c256, c512, c4096 = scaled(256, width), scaled(512, width), scaled(FC_CHANNELS, width)
        self.features = make_vgg16_features(width, norm)
        self._pool3_index, self._pool4_index = pool_indices(self.features)
        self.fc6 = nn.Conv2d(c512, c4096, 7)
        self.fc7 = nn.Conv2d(c4096, c4096, 1)
        self.drop6 = nn.Dropout(dropout)
        self.drop7 = nn.Dropout(dropout)
        self.score_fr = nn.Conv2d(c4096, NUM_OUTPUTS, 1)
        self.score_pool4 = nn.Conv2d(c512, NUM_OUTPUTS, 1)
        self.score_pool3 = nn.Conv2d(c256, NUM_OUTPUTS, 1)
        self.upscore2 = BilinearUpsample(NUM_OUTPUTS, 2)
        self.upscore_pool4 = BilinearUpsample(NUM_OUTPUTS, 2)
        self.upscore8 = BilinearUpsample(NUM_OUTPUTS, 8)
        # the random stream of dropout while training (the trainer's own generator; None: torch's global one)
        self.dropout_generator: torch.Generator | None = None
        self.reset_parameters(generator)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random trunk (Kaiming, ReLU gain, drawn from ``generator``), zero biases; score layers all zero
        (logits start at 0)."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.GroupNorm):
                module.reset_parameters()
        for score in (self.score_fr, self.score_pool4, self.score_pool3):
            nn.init.zeros_(score.weight)
            nn.init.zeros_(score.bias)

    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> (pool3, pool4, pool5) feature maps."""
        pool3 = pool4 = None
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == self._pool3_index:
                pool3 = x  # (N, c256, ~(H+198)/8, ...)
            elif index == self._pool4_index:
                pool4 = x  # (N, c512, ~(H+198)/16, ...)
        return pool3, pool4, x  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        if self.input_downsample > 1:
            x = F.avg_pool2d(x, self.input_downsample, ceil_mode=True)
        elif self.input_upsample > 1:
            x = F.interpolate(x, scale_factor=self.input_upsample, mode="bilinear", align_corners=False)
        pool3, pool4, pool5 = self.trunk(x)
        fc = self._dropout(F.relu(self.fc7(self._dropout(F.relu(self.fc6(pool5)), self.drop6))), self.drop7)
        up2 = self.upscore2(self.score_fr(fc))  # (N, 3, h4, w4)
        fuse4 = up2 + center_crop_at(self.score_pool4(pool4), CROP_POOL4, *up2.shape[-2:])
        up4 = self.upscore_pool4(fuse4)  # (N, 3, h3, w3)
        fuse3 = up4 + center_crop_at(self.score_pool3(pool3), CROP_POOL3, *up4.shape[-2:])
        logits = center_crop_at(self.upscore8(fuse3), CROP_FINAL, *x.shape[-2:])  # (N, 3, h, w)
        if self.input_downsample > 1:
            logits = F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=False)
        elif self.input_upsample > 1:
            logits = F.adaptive_avg_pool2d(logits, (height, width))  # back to the input grid
        return logits  # (N, 3, H, W)


    def _dropout(self, x: torch.Tensor, layer: nn.Dropout) -> torch.Tensor:
        """``layer(x)``, its mask drawn from :attr:`dropout_generator` when one is set (training)."""
        if self.dropout_generator is None or not self.training or layer.p == 0:
            return layer(x)
        keep = torch.empty_like(x).bernoulli_(1.0 - layer.p, generator=self.dropout_generator)
        return x * keep / (1.0 - layer.p)


def build_fcn8s(config: ModelConfig, generator: torch.Generator | None = None) -> FCN8s:
    """An FCN-8s sized by ``config`` (width, dropout, input down-sampling), randomly initialised from
    ``generator`` (None: torch's global generator)."""
    return FCN8s(width=config.width, dropout=config.dropout, input_downsample=config.input_downsample,
                 norm=config.norm, input_upsample=config.input_upsample, generator=generator)

