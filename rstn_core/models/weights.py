"""ImageNet VGG16 weights for the FCN-8s trunk (SPEC §2.1).

The authors started from FCN-8s PASCAL VOC weights whose links are dead; we initialise the VGG16
trunk (conv1_1..conv5_3, fc6, fc7) from an ImageNet VGG16 state dict in torchvision's key layout
(``features.{i}.weight``, ``classifier.0`` = fc6 as a (4096, 25088) matrix, ``classifier.3`` = fc7),
read from a local file, or downloaded with torch's own hub utilities when the user is online.
Score layers stay zero. Only the full-width network (``width == 1``) can take these weights.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch

from rstn_core.errors import CheckpointError
from rstn_core.models.fcn import FCN8s

log = logging.getLogger(__name__)

# torchvision's published ImageNet VGG16 weights (used only when a user passes this URL, never in tests)
TORCHVISION_VGG16_URL = "https://download.pytorch.org/models/vgg16-397923af.pth"


def read_vgg16_state_dict(path_or_url: str | Path) -> dict[str, torch.Tensor]:
    """Read a torchvision-layout VGG16 state dict from a file (safe loading) or an http(s) URL."""
    source = str(path_or_url)
    if source.startswith(("http://", "https://")):
        return torch.hub.load_state_dict_from_url(source, map_location="cpu", weights_only=True)
    path = Path(source)
    if not path.is_file():
        raise CheckpointError(f"VGG16 weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a plain state dict"
        from rstn_core.models.bundle import refusal_reason

        raise CheckpointError(f"{path}: not a plain VGG16 state dict ({refusal_reason(exc)})") from exc
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a state dict (mapping), got {type(state).__name__}")
    return dict(state)


def vgg16_to_fcn_state(vgg: Mapping[str, torch.Tensor], model: FCN8s, source: str = "VGG16") -> dict[str, torch.Tensor]:
    """Map torchvision VGG16 keys onto ``model``'s trunk, reshaping the classifier into fc6/fc7 convs."""
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for key in own:
        if key.startswith("features."):
            mapped[key] = vgg.get(key)  # type: ignore[assignment]
    renames = {"fc6.weight": "classifier.0.weight", "fc6.bias": "classifier.0.bias",
               "fc7.weight": "classifier.3.weight", "fc7.bias": "classifier.3.bias"}
    for ours, theirs in renames.items():
        value = vgg.get(theirs)
        if value is not None and ours.endswith("weight"):
            value = value.reshape(own[ours].shape) if value.numel() == own[ours].numel() else value
        mapped[ours] = value  # type: ignore[assignment]
    missing = sorted(k for k, v in mapped.items() if v is None)
    if missing:
        raise CheckpointError(f"{source}: missing VGG16 keys for {missing[:6]}{' ...' if len(missing) > 6 else ''}; "
                              "expected torchvision's layout (features.0.weight ... classifier.3.bias)")
    bad = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in mapped.items() if tuple(v.shape) != tuple(own[k].shape)]
    if bad:
        key, got, want = bad[0]
        raise CheckpointError(f"{source}: shape mismatch for {key}: file has {got}, model needs {want} "
                              f"({len(bad)} mismatched tensors)")
    return mapped


def load_vgg16_weights(model: FCN8s, path_or_url: str | Path = TORCHVISION_VGG16_URL) -> FCN8s:
    """Initialise ``model``'s VGG16 trunk and fc6/fc7 in place from ImageNet weights; returns ``model``."""
    if getattr(model, "norm", "none") != "none":
        raise CheckpointError(f"ImageNet VGG16 weights fit the un-normalised network; this model has norm "
                              f"{model.norm!r} (use the 'paper' preset or random init)")
    if model.width != 1.0:
        raise CheckpointError(f"ImageNet VGG16 weights need the full-width network (width 1.0); "
                              f"this model has width {model.width} (use the 'paper' preset or random init)")
    vgg = read_vgg16_state_dict(path_or_url)
    mapped = vgg16_to_fcn_state(vgg, model, source=str(path_or_url))
    with torch.no_grad():
        own = model.state_dict()
        for key, value in mapped.items():
            own[key].copy_(value.to(own[key].dtype))
    log.info("initialised the VGG16 trunk from %s (%d tensors)", path_or_url, len(mapped))
    return model
