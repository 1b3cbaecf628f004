"""Crop boxes around a reference map, crop and uncrop (SPEC §2.3), each beside its inverse.

Boxes are :class:`rstn_core.types.BBox` in view-slice pixel coordinates (rows, cols), half-open.
``crop``/``uncrop`` work on numpy arrays and torch tensors alike (plain slicing / padding).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rstn_core.types import BBox

# Logit pasted outside a fine crop: "certainly background" (sigmoid underflows to 0 in float16 too).
BACKGROUND_LOGIT = -30.0


def tight_box(reference: np.ndarray, threshold: float = 0.5) -> BBox | None:
    """Smallest box covering every pixel >= ``threshold`` of ``reference`` ((H, W) or (C, H, W)).

    Returns ``None`` when nothing is activated.
    """
    ref = np.asarray(reference)
    if ref.ndim == 3:
        ref = (ref >= threshold).any(axis=0)
    elif ref.ndim == 2:
        ref = ref >= threshold
    else:
        raise ValueError(f"reference map must be (H, W) or (C, H, W), got shape {reference.shape}")
    rows = np.flatnonzero(ref.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(ref.any(axis=0))
    return BBox(int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def expand_box(box: BBox, margins: Sequence[int], shape: Sequence[int]) -> BBox:
    """Add (top, bottom, left, right) margins to ``box`` and clip to an (H, W) image."""
    top, bottom, left, right = (int(m) for m in margins)
    h, w = int(shape[-2]), int(shape[-1])
    return BBox(max(0, box.y0 - top), min(h, box.y1 + bottom), max(0, box.x0 - left), min(w, box.x1 + right))


def draw_margins(margin: int, jitter_prob: float, rng: np.random.Generator | None) -> tuple[int, int, int, int]:
    """Training margins (released code): with probability ``jitter_prob`` each of the four
    margins is drawn independently and uniformly from {0..2K}; otherwise all equal K."""
    if rng is None or jitter_prob <= 0 or rng.random() >= jitter_prob:
        return (margin, margin, margin, margin)
    return tuple(int(v) for v in rng.integers(0, 2 * margin + 1, size=4))  # type: ignore[return-value]


def crop_box(
    reference: np.ndarray,
    margin: int,
    threshold: float = 0.5,
    jitter_prob: float = 0.0,
    rng: np.random.Generator | None = None,
) -> BBox | None:
    """The crop box for one window: tight box of ``reference`` >= threshold, plus margins, clipped.

    ``reference``: (3, H, W) or (H, W) probabilities or mask. ``None`` when it is empty.
    """
    box = tight_box(reference, threshold)
    if box is None:
        return None
    return expand_box(box, draw_margins(margin, jitter_prob, rng), np.shape(reference))


def crop(x, box: BBox):
    """``x[..., y0:y1, x0:x1]`` for an array/tensor of shape (..., H, W)."""
    return x[..., box.y0 : box.y1, box.x0 : box.x1]


def uncrop(crop_values, box: BBox, shape: Sequence[int], fill: float = BACKGROUND_LOGIT):
    """Paste (..., h, w) ``crop_values`` at ``box`` into a (..., H, W) map filled with ``fill``.

    Exact inverse of :func:`crop` inside the box. Differentiable for torch tensors.
    """
    h, w = int(shape[-2]), int(shape[-1])
    if crop_values.shape[-2:] != (box.height, box.width) and tuple(crop_values.shape[-2:]) != (box.height, box.width):
        raise ValueError(f"crop of shape {tuple(crop_values.shape)} does not match box {box.as_tuple()}")
    pad = (box.x0, w - box.x1, box.y0, h - box.y1)  # (left, right, top, bottom)
    if isinstance(crop_values, np.ndarray):
        widths = [(0, 0)] * (crop_values.ndim - 2) + [(pad[2], pad[3]), (pad[0], pad[1])]
        return np.pad(crop_values, widths, mode="constant", constant_values=fill)
    import torch.nn.functional as F  # local: geometry stays importable without torch

    return F.pad(crop_values, pad, mode="constant", value=fill)
