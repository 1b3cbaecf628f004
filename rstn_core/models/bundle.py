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
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rstn_core.atomic import atomic_write
from rstn_core.config import DataConfig, ModelConfig
from rstn_core.errors import CheckpointError
from rstn_core.models.rstn import METHODS, RSTN, build_model
from rstn_core.types import Method, View

log = logging.getLogger(__name__)

BUNDLE_FORMAT = "rstn-bundle"
BUNDLE_VERSION = 1
BUNDLE_SUFFIX = ".rstn"

_PLAIN = (str, int, float, bool, type(None))

# Sane ranges for configurations read from a bundle (a crafted bundle must not make inference
# allocate without bound): name -> (low, high), inclusive.
MODEL_RANGES = {"input_upsample": (1, 8), "coarse_input_upsample": (1, 8), "input_downsample": (1, 16)}
SPACING_RANGE_MM = (0.1, 20.0)
HU_RANGE = (-5000.0, 50000.0)


@dataclass
class ModelBundle:
    """Everything the inference engine needs: ``models[view]`` are in eval mode after loading.

    ``meta``: plain values only (organ name, target label ids, training info, code version ...).
    """

    method: Method
    model_config: ModelConfig
    data_config: DataConfig
    models: dict[View, RSTN]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        method = Method.find(self.method, METHODS)
        if method is None:
            raise ValueError(f"bundle method must be {Method.expected(METHODS)}, got {self.method!r}")
        self.method = method

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
    def write(tmp: str) -> None:
        try:
            torch.save(payload, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a full disk as "unexpected pos ..."
            import errno
            import os

            raise OSError(errno.ENOSPC if _disk_full(tmp) else errno.EIO,
                          os.strerror(errno.ENOSPC) if _disk_full(tmp) else f"torch.save failed: "
                          f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", str(path)) from exc

    return atomic_write(path, write)


def _disk_full(path: str, margin: int = 1 << 20) -> bool:
    import shutil

    try:
        return shutil.disk_usage(Path(path).parent).free < margin
    except OSError:
        return False


def safe_torch_load(path: str | Path, kind: str, device: str | torch.device = "cpu") -> dict[str, Any]:
    """``torch.load(weights_only=True)``; any failure becomes a :class:`CheckpointError` naming ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{kind} file not found: {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling refused or damaged file
        raise CheckpointError(f"{path}: not a valid {kind} (refused by safe loading: {refusal_reason(exc)})") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path}: not a {kind} (top level is {type(payload).__name__}, expected a dict)")
    return payload


def refusal_reason(exc: BaseException) -> str:
    """torch's reason for refusing a file, without its hints that invite unsafe loading
    (``weights_only=False``, ``add_safe_globals``)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    found = re.search(r"WeightsUnpickler error:\s*([^\n]*)", text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = found.group(1) if found else (lines[0] if lines else type(exc).__name__)
    reason = re.split(r"\.\s+(?:Please use|Check the|To load|This file can still)", reason)[0].strip()
    if re.search(r"weights_only|Re-running torch\.load|safe_globals|trust", reason, re.IGNORECASE):
        reason = "the file holds objects other than tensors and plain values"
    return reason.rstrip(".") or type(exc).__name__


def check_ranges(model_config: ModelConfig, data_config: DataConfig, path: str | Path) -> None:
    """Refuse a bundle whose configuration is outside :data:`MODEL_RANGES` / spacing / HU ranges."""
    for name, (low, high) in MODEL_RANGES.items():
        value = getattr(model_config, name)
        if value is not None and not low <= value <= high:
            raise CheckpointError(f"{path}: model_config.{name} = {value} is outside the supported range "
                                  f"{low}..{high}")
    if data_config.spacing is not None and not all(
            math.isfinite(s) and SPACING_RANGE_MM[0] <= s <= SPACING_RANGE_MM[1] for s in data_config.spacing):
        raise CheckpointError(f"{path}: data_config.spacing = {data_config.spacing} mm is outside "
                              f"{SPACING_RANGE_MM[0]}..{SPACING_RANGE_MM[1]} mm")
    for name in ("hu_min", "hu_max"):
        value = float(getattr(data_config, name))
        if not (math.isfinite(value) and HU_RANGE[0] <= value <= HU_RANGE[1]):
            raise CheckpointError(f"{path}: data_config.{name} = {value} is outside "
                                  f"{HU_RANGE[0]:g}..{HU_RANGE[1]:g} HU")


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
    if not bundle.models:
        raise ValueError("a bundle needs at least one view's model")
    check_plain(bundle.meta)
    payload = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "method": Method(bundle.method).value,  # plain text: old and new readers load it
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
    if not isinstance(method, str) or method not in METHODS:
        raise CheckpointError(f"{path}: unknown method {method!r}; expected {Method.expected(METHODS)}")
    method = Method(method)
    try:
        model_config = ModelConfig.from_dict(payload["model_config"])
        data_config = DataConfig.from_dict(payload["data_config"])
        views = [View.parse(v) for v in payload["views"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: invalid bundle configuration: {exc}") from exc
    check_ranges(model_config, data_config, path)
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
