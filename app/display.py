"""Pure numpy helpers that turn canonical arrays into what the screen shows (no Panel, no torch).

Display frame
-------------
A view slice from :func:`rstn_core.slicing.to_view` is ``(H, W)``: the two canonical (R, A, S) axes
other than the view's slicing axis, in order (axial: (R, A); coronal: (R, S); sagittal: (A, S)).
On screen we follow the radiological convention:

* axial: anterior at the top, the patient's right on the screen's left;
* coronal: superior at the top, the patient's right on the screen's left;
* sagittal: superior at the top, anterior on the screen's left.

Because every canonical axis grows toward R, A or S, all three views come out of the same
operation: flip both axes and transpose, ``display = slice[::-1, ::-1].T`` of shape ``(W, H)``;
display row 0 is the top of the screen. Physical coordinates (mm) of the display: the horizontal
axis spans ``H * spacing_h`` and the vertical axis ``W * spacing_w``; a view-slice pixel
``(h, w)`` sits at horizontal ``(H - 1 - h + 0.5) * spacing_h`` and vertical ``(w + 0.5) * spacing_w``
(vertical grows upward, as in HoloViews / Bokeh).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rstn_core.slicing import to_display, to_view
from rstn_core.types import BBox, View

# Window presets (centre/width in HU). "model" is the network's own clip window (SPEC §1.2).
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "abdomen (W350 L40)": (40.0, 350.0),
    "model (-100..240 HU)": (70.0, 340.0),
    "bone (W1500 L300)": (300.0, 1500.0),
    "lung (W1500 L-600)": (-600.0, 1500.0),
}

# Categorical codes for the TP/FP/FN overlay.
TP, FP, FN = 1, 2, 3
ERROR_COLORS = {TP: "#2ca02c", FP: "#ff7f0e", FN: "#1f77b4"}  # green, orange, blue
ERROR_CMAP = [ERROR_COLORS[TP], ERROR_COLORS[FP], ERROR_COLORS[FN]]  # overlay codes 1, 2, 3
TRUTH_COLOR = "#ffd700"
PRED_COLOR = "#e31a1c"


def legend_html(items: Sequence[tuple[str, str]], tail: str = "") -> str:
    """A one-line HTML legend (class ``legend``): a square in each ``(colour, label)``, then ``tail``."""
    swatches = " ".join(f"<span style='color:{color}'>■ {label}</span>" for color, label in items)
    return f"<div class='legend'>{swatches}{' ' + tail if tail else ''}</div>"


@dataclass(frozen=True)
class DisplayGeometry:
    """Physical extent of one view's display: ``bounds`` (left, bottom, right, top) in mm."""

    view_hw: tuple[int, int]  # (H, W) of the view slice
    spacing_hw: tuple[float, float]  # mm per pixel along H and W

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        h, w = self.view_hw
        sh, sw = self.spacing_hw
        return (0.0, 0.0, h * sh, w * sw)

    @property
    def aspect(self) -> float:
        """Physical width / height of the display."""
        left, bottom, right, top = self.bounds
        return (right - left) / (top - bottom)


def view_axes(view: View | str) -> tuple[int, int]:
    """Canonical axes (H axis, W axis) of a view slice."""
    axis = View.parse(view).axis
    rest = [a for a in range(3) if a != axis]
    return rest[0], rest[1]


def geometry(volume_shape: Sequence[int], spacing: Sequence[float], view: View | str) -> DisplayGeometry:
    """Display geometry of ``view`` for a canonical volume of ``volume_shape`` with ``spacing`` (mm)."""
    ah, aw = view_axes(view)
    return DisplayGeometry((int(volume_shape[ah]), int(volume_shape[aw])), (float(spacing[ah]), float(spacing[aw])))


AXIS_LABELS = {
    View.AXIAL: ("patient's right ← → left (mm)", "posterior ← → anterior (mm)"),
    View.CORONAL: ("patient's right ← → left (mm)", "inferior ← → superior (mm)"),
    View.SAGITTAL: ("anterior ← → posterior (mm)", "inferior ← → superior (mm)"),
}


def axis_labels(view: View | str) -> tuple[str, str]:
    """(horizontal, vertical) anatomical axis labels of a view's display (radiological convention)."""
    return AXIS_LABELS[View.parse(view)]


def num_slices(volume_shape: Sequence[int], view: View | str) -> int:
    return int(volume_shape[View.parse(view).axis])


def view_slice(volume: np.ndarray, view: View | str, index: int) -> np.ndarray:
    """(X, Y, Z) canonical -> (H, W) slice ``index`` of ``view`` (clipped into range)."""
    stack = to_view(volume, View.parse(view))
    index = int(np.clip(index, 0, stack.shape[0] - 1))
    return stack[index]


def display_slice(volume: np.ndarray, view: View | str, index: int) -> np.ndarray:
    """Shortcut: canonical volume -> display array of slice ``index`` of ``view``."""
    return to_display(view_slice(volume, view, index))


def box_to_display(box: BBox, geom: DisplayGeometry) -> tuple[float, float, float, float]:
    """A view-slice box (rows = H, cols = W, half-open) -> (x0, y0, x1, y1) in display mm."""
    h, _ = geom.view_hw
    sh, sw = geom.spacing_hw
    return ((h - box.y1) * sh, box.x0 * sw, (h - box.y0) * sh, box.x1 * sw)


def display_to_index(x_mm: float, y_mm: float, geom: DisplayGeometry) -> tuple[int, int]:
    """Display mm -> view-slice pixel (h, w), clipped to the image (for hover / click read-outs)."""
    h, w = geom.view_hw
    sh, sw = geom.spacing_hw
    hi = int(np.clip(h - 1 - np.floor(x_mm / sh), 0, h - 1))
    wi = int(np.clip(np.floor(y_mm / sw), 0, w - 1))
    return hi, wi


def window_clim(centre: float, width: float) -> tuple[float, float]:
    """Window centre/width (HU) -> colour limits (low, high)."""
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    return (centre - width / 2.0, centre + width / 2.0)


def preset_clim(name: str, custom: tuple[float, float] | None = None) -> tuple[float, float]:
    """Colour limits for a preset name; ``"custom"`` uses ``custom`` = (centre, width)."""
    if name == "custom":
        if custom is None:
            raise ValueError("the custom window needs a centre and a width")
        return window_clim(*custom)
    if name not in WINDOW_PRESETS:
        raise ValueError(f"unknown window preset {name!r}; known: {sorted(WINDOW_PRESETS)} or 'custom'")
    return window_clim(*WINDOW_PRESETS[name])


def apply_window(hu: np.ndarray, clim: tuple[float, float]) -> np.ndarray:
    """HU -> uint8 grey levels for a window (used by the static report)."""
    lo, hi = clim
    scaled = (np.asarray(hu, dtype=np.float32) - lo) / (hi - lo)
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def mask_layer(mask: np.ndarray) -> np.ndarray:
    """Bool mask -> float32 with 1 inside and NaN outside (transparent background)."""
    out = np.full(mask.shape, np.nan, dtype=np.float32)
    out[np.asarray(mask, dtype=bool)] = 1.0
    return out


def contour(mask: np.ndarray) -> np.ndarray:
    """Inner boundary of a 2D bool mask (pixels inside with a 4-neighbour outside)."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"contour needs a 2D mask, got shape {m.shape}")
    padded = np.pad(m, 1, mode="constant", constant_values=False)
    interior = (
        padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    )
    return m & ~interior


def error_codes(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per-pixel TP/FP/FN codes (uint8: 0 = true negative, 1 = TP, 2 = FP, 3 = FN)."""
    p = np.asarray(pred, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} differ in shape")
    out = np.zeros(p.shape, dtype=np.uint8)
    out[p & t] = TP
    out[p & ~t] = FP
    out[~p & t] = FN
    return out


def error_layer(pred: np.ndarray, truth: np.ndarray, outline: bool = False) -> np.ndarray:
    """TP/FP/FN codes as float32 with NaN for true negatives; ``outline`` keeps only each class's contour."""
    codes = error_codes(pred, truth)
    if outline:
        keep = np.zeros(codes.shape, dtype=bool)
        for code in (TP, FP, FN):
            keep |= contour(codes == code)
        codes = np.where(keep, codes, 0).astype(np.uint8)
    out = codes.astype(np.float32)
    out[codes == 0] = np.nan
    return out


def errors_per_slice(pred: np.ndarray, truth: np.ndarray, view: View | str) -> np.ndarray:
    """(L,) number of wrong voxels (FP + FN) on every slice of ``view``."""
    wrong = np.asarray(pred, dtype=bool) ^ np.asarray(truth, dtype=bool)
    stack = to_view(wrong, View.parse(view))
    return stack.reshape(stack.shape[0], -1).sum(axis=1)


def worst_slice(pred: np.ndarray, truth: np.ndarray, view: View | str) -> int | None:
    """Index of the slice of ``view`` with the most FP + FN voxels, or ``None`` when nothing is wrong."""
    counts = errors_per_slice(pred, truth, view)
    if counts.size == 0 or counts.max() == 0:
        return None
    return int(np.argmax(counts))


def largest_slice(mask: np.ndarray, view: View | str) -> int:
    """Index of the slice of ``view`` with the most voxels of ``mask`` (middle slice when empty)."""
    stack = to_view(np.asarray(mask, dtype=bool), View.parse(view))
    counts = stack.reshape(stack.shape[0], -1).sum(axis=1)
    if counts.max() == 0:
        return stack.shape[0] // 2
    return int(np.argmax(counts))


def diverging_clim(weights: np.ndarray, centre: float = 1.0, floor: float = 0.05) -> tuple[float, float]:
    """Colour limits symmetric around ``centre`` ("no change" for saliency weights)."""
    w = np.asarray(weights, dtype=np.float64)
    finite = w[np.isfinite(w)]
    spread = float(np.max(np.abs(finite - centre))) if finite.size else 0.0
    spread = max(spread, floor)
    return (centre - spread, centre + spread)


def round_color(round_index: int, n_rounds: int) -> str:
    """A colour per round for crop boxes and curves (viridis-like ramp, hex)."""
    ramp = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b",
            "#fde725"]
    if n_rounds <= 1:
        return ramp[-1]
    pos = round_index / max(n_rounds - 1, 1)
    return ramp[int(round(pos * (len(ramp) - 1)))]


# Colours of the methods in charts: (inter-round DSC, DSC vs truth); the second method never reuses the first's.
SERIES_COLORS = [("#1f77b4", "#d62728"), ("#2ca02c", "#9467bd"), ("#8c564b", "#e377c2")]


def series_colors(index: int) -> tuple[str, str]:
    return SERIES_COLORS[index % len(SERIES_COLORS)]


def box_rows(rounds, view: View | str, index: int, geom: DisplayGeometry, upto: int | None = None) -> list[tuple]:
    """(x0, y0, x1, y1, round, colour) of the crop box of every round ≤ ``upto`` on slice ``index``.

    Round 0 has no box (every window runs uncropped); round t's box was cut from round t−1's mask."""
    view = View.parse(view)
    last = len(rounds) - 1 if upto is None else min(upto, len(rounds) - 1)
    rows = []
    for state in rounds[: last + 1]:
        box = state.boxes.get(view, {}).get(int(index))
        if box is not None:
            rows.append((*box_to_display(box, geom), int(state.round), round_color(state.round, len(rounds))))
    return rows
