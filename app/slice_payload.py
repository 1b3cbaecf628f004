"""What the browser needs to draw every slice itself, with no server round trip (no Panel here).

The browser receives, once per case, the CT as int16 HU and the truth as uint8 (flat, C order of the
canonical (X, Y, Z) volume), once per shown round the prediction as uint8, and a small JSON record
(:func:`view_meta`) per change of view, round or display setting. It cuts the slice of any view out
of the flat arrays (``app/slice_render.js``); a slice change is pure browser work.

The payload is bounded: a volume of more than :data:`MAX_DISPLAY_VOXELS` voxels is sent on a coarser
display grid (every ``step``-th voxel along each axis; the page says so). Cases the model resamples
(spacing-aware engines) are shown on the model's grid, so a 512 x 512 x 300 CT at 0.8 mm becomes
about 136 x 136 x 80 voxels at 3 mm before it is sent.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rstn_core.types import View

from . import display

MAX_DISPLAY_VOXELS = 4_000_000  # int16 CT + uint8 truth + uint8 prediction: <= 16 MB to the browser
FRAME = 400  # px, the larger side of the main slice plot


def display_step(shape: Sequence[int], limit: int = MAX_DISPLAY_VOXELS) -> int:
    """The smallest stride along every axis that keeps the sent volume within ``limit`` voxels."""
    step = max(1, math.ceil((math.prod(shape) / limit) ** (1 / 3)))
    while math.prod(math.ceil(s / step) for s in shape) > limit:
        step += 1
    return step


def strided(volume: np.ndarray, step: int) -> np.ndarray:
    return volume if step == 1 else volume[::step, ::step, ::step]


def ct_array(hu: np.ndarray, step: int) -> np.ndarray:
    """(X, Y, Z) HU -> flat int16 on the display grid."""
    small = strided(np.asarray(hu), step)
    return np.ascontiguousarray(np.clip(np.rint(small), -32768, 32767), dtype=np.int16).ravel()


def mask_array(mask: np.ndarray | None, step: int) -> np.ndarray:
    """(X, Y, Z) mask -> flat uint8 (0/1) on the display grid; an empty array for no mask."""
    if mask is None:
        return np.zeros(0, dtype=np.uint8)
    return np.ascontiguousarray(strided(np.asarray(mask), step), dtype=bool).view(np.uint8).ravel()


_SHARED_LOCK = threading.Lock()
_SHARED: OrderedDict = OrderedDict()  # (kind, id(source), step) -> (weak ref to source, array sent)
SHARED_ARRAYS = 8


def _shared(kind: str, source: np.ndarray | None, step: int, build: Callable[[Any, int], np.ndarray]) -> np.ndarray:
    """``build(source, step)`` once per source array (by identity, while it lives): every session showing the
    same case (the shared demo case, its shared round 0) gets the same read-only array, encoded for the
    browser without a per-session copy."""
    if source is None:
        return build(source, step)
    key = (kind, id(source), step)
    with _SHARED_LOCK:
        hit = _SHARED.get(key)
        if hit is not None and hit[0]() is source:
            _SHARED.move_to_end(key)
            return hit[1]
    out = build(source, step)
    out.flags.writeable = False
    with _SHARED_LOCK:
        _SHARED[key] = (weakref.ref(source), out)
        while len(_SHARED) > SHARED_ARRAYS:
            _SHARED.popitem(last=False)
    return out


def shared_ct_array(hu: np.ndarray, step: int) -> np.ndarray:
    """:func:`ct_array`, built once per CT array."""
    return _shared("ct", hu, step, ct_array)


def shared_mask_array(mask: np.ndarray | None, step: int) -> np.ndarray:
    """:func:`mask_array`, built once per mask array."""
    return _shared("mask", mask, step, mask_array)


def frame_size(geom: display.DisplayGeometry, largest: int = FRAME) -> tuple[int, int]:
    """(width, height) in px with the physical aspect of the view; the larger side is ``largest``."""
    aspect = geom.aspect
    if aspect >= 1:
        return largest, max(40, int(round(largest / aspect)))
    return max(40, int(round(largest * aspect))), largest


def grid_note(shape: Sequence[int], step: int) -> str:
    """Plain words about the display grid (empty when every voxel is sent)."""
    if step == 1:
        return ""
    small = "×".join(str(math.ceil(s / step)) for s in shape)
    return (f"Large CT: the browser shows one voxel in {step} along each axis ({small} of "
            f"{'×'.join(map(str, shape))}) so slice changes stay instant; the model runs on every voxel.")


def view_geometry(case: Any, view: View | str, rounds: Sequence[Any], upto: int, centre: int) -> dict[str, Any]:
    """One view's part of the record: its axes, slice count, frame in mm and px, labels, the slice to open
    at (``centre``) and the crop boxes ``[slice, x0, y0, x1, y1, round, colour]`` of rounds <= ``upto``."""
    view = View.parse(view)
    shape = tuple(int(s) for s in case.image.shape)
    geom = display.geometry(shape, case.image.spacing, view)
    left, bottom, right, top = geom.bounds
    xlabel, ylabel = display.axis_labels(view)
    boxes = []
    for state in rounds[: upto + 1]:
        colour = display.round_color(state.round, len(rounds))
        for index, box in sorted(state.boxes.get(view, {}).items()):
            boxes.append([int(index), *display.box_to_display(box, geom), int(state.round), colour])
    return {"axis": view.axis, "axes": list(display.view_axes(view)), "n": display.num_slices(shape, view),
            "dw": right - left, "dh": top - bottom, "xlabel": xlabel, "ylabel": ylabel, "frame": list(frame_size(geom)),
            "centre": int(centre), "boxes": boxes, "geom_key": f"{case.case_id}:{shape}:{view.value}"}


def case_meta(case: Any, step: int, rounds: Sequence[Any], round_index: int, looks: dict[str, Any],
              centres: dict[str, int], version: int) -> dict[str, Any]:
    """The JSON record the browser draws every view with: the display-grid shape, each view's geometry
    (:func:`view_geometry`; the browser switches views itself), the shown round and the display settings
    ``looks`` (errors, outline, show_truth, show_prediction, show_boxes, opacity, clim)."""
    upto = min(round_index, len(rounds) - 1) if rounds else -1
    return {
        "version": version, "case_id": case.case_id, "step": step,
        "shape": [math.ceil(int(s) / step) for s in case.image.shape],
        "views": {v.value: view_geometry(case, v, rounds, upto, centres[v.value]) for v in View},
        "round_label": f" · round {rounds[upto].round}" if rounds else "", "has_round": bool(rounds),
        "has_truth": case.label is not None, **looks,
    }
