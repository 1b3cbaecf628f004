"""Stub view models and tiny cases for engine tests (no trained weights needed)."""

from __future__ import annotations

import numpy as np
import torch

from rstn_core.types import Case, Orientation, Volume

SHAPE = (21, 23, 19)  # odd sizes on purpose
ORGAN_HU = 200.0  # normalised: (200 + 100) / 340 = 0.882
ORGAN_X = 0.75  # the oracle stub's threshold on normalised intensity


def make_volume(hu: np.ndarray, affine: np.ndarray | None = None) -> Volume:
    affine = np.eye(4) if affine is None else affine
    ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    return Volume(np.asarray(hu, dtype=np.float32), affine, Orientation(affine, tuple(hu.shape), ornt), "stub")


def ellipsoid(shape=SHAPE, centre=(10, 11, 9), radii=(4, 5, 3)) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def organ_case(label: np.ndarray | None = None, seed: int = 0, with_label: bool = True) -> Case:
    """Background HU in [-100, 100] (normalised <= 0.59), the organ at 200 HU (0.88)."""
    label = ellipsoid() if label is None else label
    rng = np.random.default_rng(seed)
    hu = rng.uniform(-100, 100, size=label.shape).astype(np.float32)
    hu[label] = ORGAN_HU
    return Case("stub", make_volume(hu), label if with_label else None)


def threshold_logits(x: torch.Tensor) -> torch.Tensor:
    """+10 where the normalised intensity looks like the organ, -10 elsewhere."""
    return torch.where(x > ORGAN_X, 10.0, -10.0).to(x.dtype)


class StubModel:
    """A :class:`ViewModel` from three functions; records every input it was called with."""

    def __init__(self, coarse=threshold_logits, refine=threshold_logits, saliency=None, uses_saliency=True):
        self._coarse, self._refine = coarse, refine
        self._saliency = saliency or (lambda p: torch.ones_like(p))
        self.uses_saliency = uses_saliency
        self.calls: dict[str, list[torch.Tensor]] = {"coarse": [], "saliency": [], "refine": []}

    def coarse(self, x):
        self.calls["coarse"].append(x.clone())
        return self._coarse(x)

    def saliency(self, prob):
        self.calls["saliency"].append(prob.clone())
        return self._saliency(prob)

    def refine(self, x_crop):
        self.calls["refine"].append(x_crop.clone())
        return self._refine(x_crop)

    def windows(self, name: str) -> int:
        return sum(int(t.shape[0]) for t in self.calls[name])


class ConvStub(torch.nn.Module):
    """A deterministic nonlinear torch model (tiny convs) for batching equivalence."""

    uses_saliency = True

    def __init__(self, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.c = self._net()
        self.f = self._net()
        self.g = torch.nn.Conv2d(3, 3, 3, padding=1)

    @staticmethod
    def _net() -> torch.nn.Module:
        conv = torch.nn.Conv2d
        return torch.nn.Sequential(conv(3, 4, 3, padding=1), torch.nn.ReLU(), conv(4, 3, 3, padding=1))

    def coarse(self, x):
        return 20 * (x - 0.7) + self.c(x)

    def saliency(self, prob):
        return 1.0 + self.g(prob)

    def refine(self, x_crop):
        return 20 * (x_crop - 0.7) + self.f(x_crop)
