"""Domain randomisation of training windows (SynthSeg-style, Billot et al., MedIA 2023).

The phantoms fix the anatomy; what a model should not rely on — the absolute HU of each organ (contrast
phase, fatty infiltration), the scanner's noise, blur and gain — is randomised per window, so that the
networks learn shape and context. Every switch and range is in :class:`AugmentConfig`, which a bundle
records (``meta["training"]["augment"]``).

Frames: a window is ``(3, H, W)`` float32 in [0, 1] (the HU window already applied) with its ``(3, H, W)``
integer label map (organ ids; 0 = everything unlabelled: fat, muscle, air, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage

from rstn_core.errors import DataError


@dataclass(frozen=True)
class AugmentConfig:
    """Each transform applies with its probability ``p_*``; ranges in normalised units (1.0 = the HU window,
    340 HU for the default -100..240), except ``gamma_log`` (log of the exponent) and ``blur_sigma`` (pixels).

    ``class_shift``: per-organ intensity offset drawn from U(-class_shift, class_shift) for every label id
    in the window (unlabelled tissue 0 gets a third of it): the organ contrasts of an unknown phase.
    ``bias``: amplitude of a smooth multiplicative gain field. ``noise``: max std of added white noise.
    ``resolution``: the in-plane resolution is lowered by a factor drawn from U(1, 1 + resolution) (linear
    down-sampling and back to the window's size), as for a coarser scanner grid or thicker reformats.
    """

    p_class: float = 0.8
    class_shift: float = 0.2
    p_gamma: float = 0.5
    gamma_log: float = 0.3
    p_bias: float = 0.5
    bias: float = 0.12
    p_blur: float = 0.3
    blur_sigma: float = 1.0
    p_noise: float = 0.5
    noise: float = 0.03
    p_resolution: float = 0.3
    resolution: float = 1.0

    def __post_init__(self) -> None:
        for name in ("p_class", "p_gamma", "p_bias", "p_blur", "p_noise", "p_resolution"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DataError(f"AugmentConfig.{name} must be a probability in [0, 1], got {value}")
        for name in ("class_shift", "gamma_log", "bias", "blur_sigma", "noise", "resolution"):
            value = getattr(self, name)
            if not 0.0 <= value <= 3.0:
                raise DataError(f"AugmentConfig.{name} must be in [0, 3], got {value}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AugmentConfig:
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise DataError(f"AugmentConfig: unknown keys {unknown}")
        return cls(**{"p_resolution": 0.0, **data})  # recorded before the resolution switch existed: it was off


def randomise_window(image: np.ndarray, label_map: np.ndarray, config: AugmentConfig,
                     rng: np.random.Generator) -> np.ndarray:
    """(3, H, W) float32 in [0, 1] + (3, H, W) int label map -> a randomised (3, H, W) float32 in [0, 1].

    Order: per-class shift (before any blur, so organ borders stay sharp in the label frame), gamma, gain
    field, in-plane blur, resolution, noise; then clip to [0, 1]. ``image`` is not modified.
    """
    out = np.array(image, dtype=np.float32, copy=True)
    if image.shape != label_map.shape:
        raise DataError(f"augment: image {image.shape} and label map {label_map.shape} differ")
    if rng.random() < config.p_class and config.class_shift > 0:
        ids = np.unique(label_map)
        shifts = rng.uniform(-config.class_shift, config.class_shift, size=ids.size).astype(np.float32)
        shifts[ids == 0] /= 3.0
        out += shifts[np.searchsorted(ids, label_map)]
        np.clip(out, 0.0, 1.0, out=out)
    if rng.random() < config.p_gamma and config.gamma_log > 0:
        out **= np.float32(np.exp(rng.uniform(-config.gamma_log, config.gamma_log)))
    if rng.random() < config.p_bias and config.bias > 0:
        out *= gain_field(out.shape[1:], config.bias, rng)[None]
    if rng.random() < config.p_blur and config.blur_sigma > 0:
        sigma = float(rng.uniform(0.0, config.blur_sigma))
        out = ndimage.gaussian_filter(out, sigma=(0.0, sigma, sigma), mode="nearest")
    if rng.random() < config.p_resolution and config.resolution > 0:
        out = lower_resolution(out, float(rng.uniform(1.0, 1.0 + config.resolution)))
    if rng.random() < config.p_noise and config.noise > 0:
        out += rng.normal(0.0, rng.uniform(0.0, config.noise), size=out.shape).astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def lower_resolution(image: np.ndarray, factor: float) -> np.ndarray:
    """(C, H, W) float32 -> the same shape, sampled in-plane ``factor`` (>= 1) times coarser, then linearly back."""
    c, h, w = image.shape
    small = ndimage.zoom(image, (1.0, 1.0 / factor, 1.0 / factor), order=1, mode="nearest", grid_mode=True)
    back = ndimage.zoom(small, (1.0, h / small.shape[1], w / small.shape[2]), order=1, mode="nearest",
                        grid_mode=True)
    return np.ascontiguousarray(back[:, :h, :w], dtype=np.float32)


def gain_field(shape: tuple[int, int], amplitude: float, rng: np.random.Generator) -> np.ndarray:
    """(H, W) float32 smooth gain 1 + b, |b| <= amplitude: a random 4 x 4 lattice, cubic-interpolated."""
    lattice = rng.uniform(-amplitude, amplitude, size=(4, 4))
    zoom = (shape[0] / 4.0, shape[1] / 4.0)
    field = ndimage.zoom(lattice, zoom, order=3, mode="nearest", grid_mode=True)[: shape[0], : shape[1]]
    pad = [(0, max(0, s - f)) for s, f in zip(shape, field.shape)]
    field = np.pad(field, pad, mode="edge")
    return (1.0 + np.clip(field, -amplitude, amplitude)).astype(np.float32)


class RandomisedWindows:
    """Training windows with domain randomisation: wraps :class:`~rstn_core.data.sampler.TrainingWindows`
    built with ``keep_label_maps=True``; ``self[i]`` -> ``(image (3, H, W) randomised, label (3, H, W))``.

    The randomisation draws from its own generator (``seed``): a resumed run continues the same
    windows but a fresh randomisation stream.
    """

    def __init__(self, windows: Sequence, config: AugmentConfig, seed: int = 0) -> None:
        if not getattr(windows, "has_label_maps", False):
            raise DataError("RandomisedWindows needs TrainingWindows built with keep_label_maps=True")
        self.windows = windows
        self.config = config
        self.rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 2718]))

    def __len__(self) -> int:
        return len(self.windows)

    def __getattr__(self, name: str):  # centers, areas, case_ids, view, threshold of the wrapped windows
        if name in ("windows", "config", "rng"):
            raise AttributeError(name)
        return getattr(self.windows, name)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        image, label = self.windows[i]
        return randomise_window(image, self.windows.label_map_window(i), self.config, self.rng), label
