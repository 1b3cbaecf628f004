"""Post-processing (released code, not in the paper; SPEC §4): drop small 3D components."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def keep_large_components(mask: np.ndarray, min_fraction: float = 0.5) -> np.ndarray:
    """Keep every 3D connected component at least ``min_fraction`` times the largest one's size.

    ``mask``: (X, Y, Z) bool. Components use ``scipy.ndimage.label``'s default (face, 6-)connectivity.
    Returns a new (X, Y, Z) bool mask; an empty mask stays empty.
    """
    if not 0.0 <= min_fraction <= 1.0:
        raise ValueError(f"min_fraction must be in [0, 1], got {min_fraction}")
    mask = np.asarray(mask, dtype=bool)
    out = mask.copy()
    region = _bounding_region(mask)  # label only the mask's bounding box: same components, far less work
    if region is None:
        return out
    labels, count = ndimage.label(mask[region])
    if count <= 1:
        return out
    sizes = np.bincount(labels.ravel())[1:]  # (count,) component sizes, label 1..count
    keep = np.zeros(count + 1, dtype=bool)
    keep[1:] = sizes >= min_fraction * sizes.max()
    out[region] = keep[labels]
    return out


def _bounding_region(mask: np.ndarray) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding every True voxel of ``mask``; ``None`` if it is empty."""
    region = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        region.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(region)
