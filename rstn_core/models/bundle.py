"""Model bundles: the trained networks of one method for one or more views, with their configs.

A bundle is a single file written atomically (temporary file + ``os.replace``) with
``torch.save`` of tensors and plain Python values only, so it is read back with
``torch.load(weights_only=True)`` and never executes code::

    {"format": "rstn-bundle", "format_version": 1, "method": "rstn" | "c2f",
     "model_config": {...}, "data_config": {...}, "views": ["axial", ...],
     "state_dicts": {"axial": {...}, ...}, "meta": {...plain values...}}

A bundle may hold a subset of the views (e.g. only axial); ``views`` records which.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rstn_core.atomic import atomic_write
from rstn_core.config import DataConfig, ModelConfig
from rstn_core.errors import CheckpointError
from rstn_core.models.rstn import METHODS, RSTN, build_model
from rstn_core.types import View

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "rstn-bundle"
BUNDLE_VERSION = 1
BUNDLE_SUFFIX = ".rstn"

_PLAIN = (str, int, float, bool, type(None))


@dataclass
class ModelBundle:
    """Everything the inference engine needs: ``models[view]`` are in eval mode after loading.

    ``meta``: plain values only (organ name, target label ids, training info, code version ...).
    """

    method: str
    model_config: ModelConfig
    data_config: DataConfig
    models: dict[View, RSTN]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def views(self) -> tuple[View, ...]:
        return tuple(self.models)


def check_plain(value: Any, where: str = "meta") -> None:
    """Raise ``ValueError`` unless ``value`` is built from str/int/float/bool/None, lists, tuples, str-keyed dicts."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where}: keys must be strings, got {key!r}")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise ValueError(f"{where}: only plain values can be stored, got {type(value).__name__} ({value!r:.60})")


def atomic_torch_save(payload: dict[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, fsync, then ``os.replace`` (never a torn file)."""
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def safe_torch_load(path: str | Path, kind: str, device: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)``; any failure becomes a :class:`CheckpointError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{kind} file not found: {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling refused or damaged file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a valid {kind} (refused by safe loading: {first_line})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a {kind} (top level is {type(payload).__name__}, expected a dict)")
    return payload


def check_format(payload: dict[str, Any], path: str | Path, fmt: str, version: int, kind: str) -> None:
    if payload.get("format") != fmt:
        raise CheckpointError(f"{path}: not an RSTN Studio {kind} (format {payload.get('format')!r}, expected {fmt!r})")
    if payload.get("format_version") != version:
        raise CheckpointError(f"{path}: {kind} format version {payload.get('format_version')!r} is not supported "
                              f"(this code reads version {version})")


def _stored(tensor: torch.Tensor, half: bool) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    return tensor.half() if half and tensor.is_floating_point() else tensor


def save_bundle(bundle: ModelBundle, path: str | Path, half: bool = False) -> Path:
    """Write ``bundle`` to ``path`` atomically; returns the path.

    ``half``: store floating-point weights as float16 (half the size; loading casts them back to
    the models' float32), as the committed demo bundles do.
    """
    if bundle.method not in METHODS:
        raise ValueError(f"bundle method must be one of {METHODS}, got {bundle.method!r}")
    if not bundle.models:
        raise ValueError("a bundle needs at least one view's model")
    check_plain(bundle.meta)
    payload = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "method": bundle.method,
        "model_config": bundle.model_config.to_dict(),
        "data_config": bundle.data_config.to_dict(),
        "views": [View.parse(v).value for v in bundle.models],
        "state_dicts": {View.parse(v).value: {k: _stored(t, half) for k, t in m.state_dict().items()}
                        for v, m in bundle.models.items()},
        "meta": bundle.meta,
    }
    out = atomic_torch_save(payload, path)
    log.info("wrote %s bundle with views %s to %s", bundle.method, payload["views"], out)
    return out


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> ModelBundle:
    """Read a bundle safely; models are built from the stored config, loaded strictly, in eval mode on ``device``."""
    payload = safe_torch_load(path, "model bundle")
    check_format(payload, path, BUNDLE_FORMAT, BUNDLE_VERSION, "model bundle")
    method = payload.get("method")
    if method not in METHODS:
        raise CheckpointError(f"{path}: unknown method {method!r}; expected one of {METHODS}")
    try:
        model_config = ModelConfig.from_dict(payload["model_config"])
        data_config = DataConfig.from_dict(payload["data_config"])
        views = [View.parse(v) for v in payload["views"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid bundle configuration: {exc}") from exc
    if not views:
        raise CheckpointError(f"{path}: the bundle holds no view")
    states = payload.get("state_dicts") or {}
    models: dict[View, RSTN] = {}
    for view in views:
        if view.value not in states:
            raise CheckpointError(f"{path}: view {view.value!r} is listed but its weights are missing")
        model = build_model(method, model_config)
        try:
            model.load_state_dict(states[view.value], strict=True)
        except RuntimeError as exc:
            raise CheckpointError(f"{path}: weights of view {view.value!r} do not fit the stored model "
                                  f"configuration: {str(exc).splitlines()[0]}") from exc
        models[view] = model.to(device).eval()
    meta = payload.get("meta") or {}
    return ModelBundle(method, model_config, data_config, models, dict(meta))
