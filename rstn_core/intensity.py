"""CT intensity window (SPEC §1.2): clip HU to [hu_min, hu_max] and scale linearly to [0, 1]."""

from __future__ import annotations

import numpy as np

from rstn_core.config import DataConfig


def normalize_hu(hu: np.ndarray, config: DataConfig | None = None) -> np.ndarray:
    """(any shape) HU -> float32 in [0, 1]; no mean subtraction."""
    cfg = config or DataConfig()
    lo, hi = float(cfg.hu_min), float(cfg.hu_max)
    out = np.clip(np.asarray(hu, dtype=np.float32), lo, hi)
    out -= lo
    out /= hi - lo
    return out


def denormalize_hu(x: np.ndarray, config: DataConfig | None = None) -> np.ndarray:
    """Inverse of :func:`normalize_hu` inside the window: [0, 1] -> HU."""
    cfg = config or DataConfig()
    return np.asarray(x, dtype=np.float32) * (cfg.hu_max - cfg.hu_min) + cfg.hu_min
