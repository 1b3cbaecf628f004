"""Slicing: volumes <-> view slice stacks <-> 3-slice windows, each with its exact inverse (SPEC §1.3).

A view stack is the canonical (R, A, S) array with the view's slicing axis moved to the front:
``(L, H, W)``. A window centred on slice ``j`` holds slices ``(j-1, j, j+1)`` as 3 channels; at
the ends of the stack the missing neighbour is replaced by the centre slice. The network predicts
one map per input slice, so a slice's value is the mean over the windows that covered it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rstn_core.types import View


def to_view(volume: np.ndarray, view: View) -> np.ndarray:
    """(X, Y, Z) canonical array -> (L, H, W) view stack (a view, not a copy)."""
    if volume.ndim != 3:
        raise ValueError(f"expected a 3D volume, got shape {volume.shape}")
    return np.moveaxis(volume, View.parse(view).axis, 0)


def from_view(stack: np.ndarray, view: View) -> np.ndarray:
    """(L, H, W) view stack -> (X, Y, Z) canonical array; exact inverse of :func:`to_view`."""
    if stack.ndim != 3:
        raise ValueError(f"expected a (L, H, W) stack, got shape {stack.shape}")
    return np.moveaxis(stack, 0, View.parse(view).axis)


def view_shape(volume_shape: Sequence[int], view: View) -> tuple[int, int, int]:
    """(X, Y, Z) -> (L, H, W) for ``view`` without touching data."""
    axis = View.parse(view).axis
    rest = [int(s) for i, s in enumerate(volume_shape) if i != axis]
    return (int(volume_shape[axis]), rest[0], rest[1])


def window_indices(centers: Sequence[int] | np.ndarray, num_slices: int) -> np.ndarray:
    """Slice indices of the windows centred on ``centers``: (N, 3) int64, edges repeat the centre."""
    c = np.asarray(centers, dtype=np.int64).reshape(-1)
    if num_slices < 1:
        raise ValueError(f"a view stack needs at least one slice, got {num_slices}")
    if c.size and (c.min() < 0 or c.max() >= num_slices):
        raise ValueError(f"window centres must lie in [0, {num_slices}), got {c.min()}..{c.max()}")
    idx = np.stack([c - 1, c, c + 1], axis=1)
    idx[:, 0] = np.where(idx[:, 0] < 0, c, idx[:, 0])
    idx[:, 2] = np.where(idx[:, 2] >= num_slices, c, idx[:, 2])
    return idx


def make_windows(stack: np.ndarray, centers: Sequence[int] | np.ndarray) -> np.ndarray:
    """(L, H, W) stack -> (N, 3, H, W) windows centred on ``centers`` (same dtype)."""
    idx = window_indices(centers, stack.shape[0])
    return stack[idx]  # (N, 3, H, W)


def accumulate_windows(
    outputs: np.ndarray, centers: Sequence[int] | np.ndarray, num_slices: int
) -> tuple[np.ndarray, np.ndarray]:
    """Average per-window outputs back into a stack: exact inverse of :func:`make_windows`.

    ``outputs``: (N, 3, H, W) one map per input slice of each window.
    Returns ``(stack (L, H, W) float32, covered (L,) bool)``; slices no window covered are 0.
    A window at an edge contributes its repeated channel once per channel (so the centre slice
    of an edge window counts twice there, as the windows' outputs are averaged channel by channel).
    """
    if outputs.ndim != 4 or outputs.shape[1] != 3:
        raise ValueError(f"expected window outputs of shape (N, 3, H, W), got {outputs.shape}")
    idx = window_indices(centers, num_slices)
    if idx.shape[0] != outputs.shape[0]:
        raise ValueError(f"{outputs.shape[0]} window outputs for {idx.shape[0]} centres")
    total = np.zeros((num_slices,) + outputs.shape[2:], dtype=np.float64)
    counts = np.zeros(num_slices, dtype=np.int64)
    flat_idx = idx.reshape(-1)
    np.add.at(total, flat_idx, outputs.reshape((-1,) + outputs.shape[2:]))
    np.add.at(counts, flat_idx, 1)
    covered = counts > 0
    total[covered] /= counts[covered, None, None]
    return total.astype(np.float32), covered


def centers_touching(mask_stack: np.ndarray) -> np.ndarray:
    """Centres of the windows whose 3 slices touch a non-empty slice of ``mask_stack`` (L, H, W) bool."""
    occupied = mask_stack.reshape(mask_stack.shape[0], -1).any(axis=1)
    near = occupied.copy()
    near[1:] |= occupied[:-1]
    near[:-1] |= occupied[1:]
    return np.flatnonzero(near)


def to_display(view_slice_hw: np.ndarray) -> np.ndarray:
    """(H, W) view slice (or (C, H, W)) -> (W, H) display array (or (C, W, H)), row 0 at the top.

    Radiological convention: for axial slices the patient's right is on the screen's left and
    anterior is up; coronal/sagittal slices show superior up. Shared by the app and the plots.
    """
    a = np.asarray(view_slice_hw)
    return np.ascontiguousarray(np.swapaxes(a[..., ::-1, ::-1], -1, -2))
