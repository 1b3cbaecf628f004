"""Numerical precision as an explicit, recorded choice (training and inference).

The authors trained and tested in fp32. Mixed precision is a speed option:

* ``fp32``: no autocast (the authors' setting).
* ``bf16`` / ``fp16``: ``torch.autocast`` to that dtype on the run's device (fp16 training uses a
  ``GradScaler``; fp16 training on the CPU is refused: its scaler and kernels are not worth it there).
* ``auto`` (the default): decided at run time from what the device offers, never hard-coded:
  - CUDA: inference fp16 (the engine's fast path); training bf16 where the GPU supports it, else fp16.
  - CPU: bf16 only when the CPU computes bf16 natively (``avx512_bf16`` or AMX: the
    ``torch.backends.cpu.get_cpu_capability()`` string or the ``/proc/cpuinfo`` flags), else fp32 —
    emulated bf16 is slower than fp32 and only loses accuracy.

:func:`resolve_precision` returns a :class:`PrecisionChoice` that names what was asked, what was
chosen, why, and the CPU threads in use; checkpoints, bundles and ``rstn predict`` record its dict.
On held-out phantoms the fast path changes DSC by well under 0.1 points (``docs/results/precision.md``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rstn_core.config import PRECISIONS

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
PURPOSES = ("inference", "training")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@dataclass(frozen=True)
class PrecisionChoice:
    """``requested`` (one of PRECISIONS) -> ``resolved`` (fp32, bf16 or fp16) on ``device_type``."""

    requested: str
    resolved: str
    device_type: str
    purpose: str
    reason: str
    cpu_capability: str | None = None
    threads: int | None = None

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or ``None`` for full precision."""
        return DTYPES.get(self.resolved)

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` for the resolved dtype (a no-op context for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def to_dict(self) -> dict:
        return asdict(self)


@functools.lru_cache(maxsize=1)
def cpu_capability() -> str:
    """torch's CPU capability string (e.g. ``AVX2``, ``AVX512``, ``AMX``), ``unknown`` if unavailable."""
    getter = getattr(torch.backends.cpu, "get_cpu_capability", None)
    try:
        return str(getter()) if getter is not None else "unknown"
    except RuntimeError:  # pragma: no cover - exotic builds
        return "unknown"


@functools.lru_cache(maxsize=4)
def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The CPU's feature flags from ``/proc/cpuinfo`` (empty where the file does not exist)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags") and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16(capability: str | None = None, flags: frozenset[str] | None = None) -> bool:
    """True when the CPU computes bf16 in hardware (AMX, or avx512_bf16 / amx_bf16 flags)."""
    capability = cpu_capability() if capability is None else capability
    flags = cpu_flags() if flags is None else flags
    return "AMX" in capability.upper() or any(f in flags for f in CPU_BF16_FLAGS)


def resolve_precision(requested: str, device: str | torch.device, purpose: str = "inference", *,
                      native_bf16: bool | None = None) -> PrecisionChoice:
    """What ``requested`` means on ``device`` for ``purpose`` (module doc); raises ``ValueError``
    naming the value for an unknown precision or one the device cannot run."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; expected one of {PRECISIONS}")
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; expected one of {PURPOSES}")
    device = torch.device(device)
    kind = device.type
    capability = cpu_capability() if kind == "cpu" else None
    threads = torch.get_num_threads() if kind == "cpu" else None

    def choice(resolved: str, reason: str) -> PrecisionChoice:
        return PrecisionChoice(requested, resolved, kind, purpose, reason, capability, threads)

    if kind not in ("cpu", "cuda"):
        if requested not in ("fp32", "auto"):
            raise ValueError(f"precision {requested!r} is supported on cpu and cuda only, not {kind!r}")
        return choice("fp32", f"{kind}: full precision")
    if requested == "fp32":
        return choice("fp32", "asked for fp32")
    if kind == "cuda":
        bf16_ok = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if requested == "bf16" and not bf16_ok:
            raise ValueError(f"precision 'bf16' asked for, but the GPU on {device} does not support bf16")
        if requested in ("bf16", "fp16"):
            return choice(requested, f"asked for {requested}")
        if purpose == "inference":
            return choice("fp16", "auto on CUDA: fp16 autocast for inference (the fast path)")
        return choice("bf16" if bf16_ok else "fp16",
                      "auto on CUDA: bf16 autocast" if bf16_ok else "auto on CUDA: no bf16 support, fp16 + GradScaler")
    # CPU
    if requested == "fp16" and purpose == "training":
        raise ValueError("precision 'fp16' is not supported for training on the CPU; use fp32, bf16 or auto")
    native = cpu_has_native_bf16(capability) if native_bf16 is None else native_bf16
    if requested in ("bf16", "fp16"):
        if requested == "bf16" and not native:
            log.warning("bf16 asked for on a CPU without native bf16 (capability %s): emulated, slower than fp32",
                        capability)
        return choice(requested, f"asked for {requested}")
    if native:
        return choice("bf16", f"auto on CPU: native bf16 (capability {capability})")
    return choice("fp32", f"auto on CPU: no native bf16 (capability {capability}), fp32 is fastest")
