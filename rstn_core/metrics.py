"""Overlap metrics on masks (SPEC §5), below both inference and evaluation so neither imports the other."""

from __future__ import annotations

import numpy as np


def dsc(a: np.ndarray, b: np.ndarray) -> float:
    """Dice-Sørensen coefficient 2|A∩B| / (|A| + |B|) of two same-shape masks; 1.0 if both are empty."""
    a = np.asarray(a, dtype=bool)
    b = np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"dsc: masks of different shapes {a.shape} and {b.shape}")
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(a & b)) / total
