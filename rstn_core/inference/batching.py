"""Chunking windows into batches and averaging their outputs back, without holding a whole view.

The engine never materialises all windows of a view: it builds ``batch_size`` windows at a time
(``slicing.make_windows`` on a chunk of centres), runs them and adds the outputs into a
:class:`WindowAccumulator`, whose result equals ``slicing.accumulate_windows`` on all outputs at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from rstn_core.slicing import window_indices
from rstn_core.types import BBox


def chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    """Consecutive pieces of ``items`` of at most ``size`` elements."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def group_by_box_size(boxes: Mapping[int, BBox | None], batch_size: int) -> list[list[int]]:
    """Batches of window centres whose crop boxes have exactly the same (h, w).

    Crops of equal size stack into one tensor without padding (padding would change the FCN's
    outputs near the crop border). Centres with a ``None`` box are left out (nothing to run).
    Batches are ordered by size then centre, so the result is deterministic.
    """
    by_size: dict[tuple[int, int], list[int]] = {}
    for centre in sorted(boxes):
        box = boxes[centre]
        if box is not None:
            by_size.setdefault((box.height, box.width), []).append(int(centre))
    batches: list[list[int]] = []
    for size in sorted(by_size):
        batches.extend(list(c) for c in chunks(by_size[size], batch_size))
    return batches


class WindowAccumulator:
    """Running mean of per-window outputs over a (L, H, W) view stack.

    ``add(outputs (n, 3, h, w), centres, boxes)`` adds each window's 3 channels to the slices
    ``(j-1, j, j+1)`` (edges repeat the centre, as :func:`rstn_core.slicing.make_windows`), inside that
    window's own box when ``boxes`` is given (outside it the window contributes 0 but counts). ``mark(centres)`` counts
    windows that were run but output zero everywhere. ``result()`` -> ``(stack (L, H, W) float32,
    covered (L,) bool)``, slices no window covered are 0 — the same as :func:`rstn_core.slicing.accumulate_windows`.
    """

    def __init__(self, num_slices: int, height: int, width: int) -> None:
        self.num_slices = int(num_slices)
        self.total = np.zeros((self.num_slices, int(height), int(width)), dtype=np.float32)
        self.counts = np.zeros(self.num_slices, dtype=np.int64)

    def add(self, outputs: np.ndarray, centres: Sequence[int], boxes: Sequence[BBox] | None = None) -> None:
        idx = window_indices(centres, self.num_slices)  # (n, 3)
        if outputs.shape[:2] != idx.shape:
            raise ValueError(f"{outputs.shape} outputs for {len(idx)} windows")
        for i in range(idx.shape[0]):
            region = (slice(None), slice(None)) if boxes is None else boxes[i].slices()
            for c in range(3):
                self.total[idx[i, c]][region] += outputs[i, c]
                self.counts[idx[i, c]] += 1

    def mark(self, centres: Sequence[int]) -> None:
        for slice_index in window_indices(centres, self.num_slices).reshape(-1):
            self.counts[slice_index] += 1

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        covered = self.counts > 0
        for slice_index in np.flatnonzero(self.counts > 1):
            self.total[slice_index] /= self.counts[slice_index]
        return self.total, covered
