"""Synthetic training windows for the training tests (a bright blob in noise)."""

import numpy as np
import torch

torch.set_num_threads(1)


def blob_windows(n: int, h: int = 23, w: int = 27, seed: int = 0, radius=(3.0, 5.0)):
    """``n`` synthetic training windows: a bright ellipse (the target) in noise; (3, h, w) each."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    out = []
    for _ in range(n):
        cy, cx = rng.integers(6, h - 6), rng.integers(6, w - 6)
        ry, rx = rng.uniform(*radius, size=2)
        label = np.stack([((yy - cy) / (ry * s)) ** 2 + ((xx - cx) / (rx * s)) ** 2 <= 1 for s in (0.9, 1.0, 0.9)])
        label = label.astype(np.float32)
        image = (0.35 + 0.08 * rng.standard_normal((3, h, w)) + 0.35 * label).astype(np.float32)
        out.append((image, label))
    return out

