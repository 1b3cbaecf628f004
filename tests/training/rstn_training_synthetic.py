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



def learning_setup(batch_size: int = 2):
    """The easy learning problem (blobs in noise) with the tiny model and the cpu-small optimiser:
    ``(windows, model_config, train_config)``, S/I/J 200/50/50 iterations at lr 1e-3."""
    from rstn_core.training.recipes import get_recipe, with_iterations

    windows = blob_windows(16, h=29, w=31, seed=3, radius=(5.0, 8.0))
    train_config = with_iterations(get_recipe("cpu-small").train.replace(lr=1e-3, margin=6, log_every=1,
                                                                         checkpoint_every=10**6,
                                                                         batch_size=batch_size),
                                   {"S": 200, "I": 50, "J": 50})
    return windows, get_recipe("tiny").model, train_config
