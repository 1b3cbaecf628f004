"""How a phantom looks, apart from its anatomy: contrast phase, fatty infiltration and atrophy of the gland.

The anatomy of a seed (:func:`rstn_core.data.phantom_params.sample_anatomy`) is drawn from one random stream;
the appearance from another (:meth:`Appearance.draw`), so the same seed gives the same organs in every
phase. HU per phase are typical published attenuations (sources in ``docs/phantoms.md``); the per-case
``enhancement`` factor of the anatomy still scales every enhanced tissue around its unenhanced value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from rstn_core.errors import DataError

#: unenhanced value every enhanced tissue is scaled around (blood / soft tissue ~40-45 HU)
UNENHANCED_BASE = 45.0
FAT_HU = -95.0

#: phase -> enhanced tissue -> mean HU. Tissues not listed keep ``phantom_anatomy.TISSUES``.
PHASE_HU: dict[str, dict[str, float]] = {
    # no IV contrast: blood ~40, liver 50-65, spleen 40-50, pancreas 40-50 (similar to spleen), kidney ~30
    "non-contrast": {"liver": 55.0, "hepatic_vessel": 40.0, "spleen": 45.0, "kidney_cortex": 32.0,
                     "kidney_medulla": 30.0, "aorta": 42.0, "ivc": 40.0, "portal": 40.0, "artery": 42.0,
                     "pancreas": 45.0, "bowel_wall": 38.0},
    # late arterial / pancreatic (~35-45 s): bright aorta, cortico-medullary kidneys, peak gland enhancement
    "arterial": {"liver": 75.0, "hepatic_vessel": 130.0, "spleen": 115.0, "kidney_cortex": 210.0,
                 "kidney_medulla": 95.0, "aorta": 300.0, "ivc": 95.0, "portal": 150.0, "artery": 290.0,
                 "pancreas": 125.0, "bowel_wall": 110.0},
    # portal venous (~60-70 s): the values the phantoms always had
    "portal-venous": {},
    # delayed (3-5 min): washed-out vessels, nephrographic kidneys, contrast in the collecting system
    "delayed": {"liver": 85.0, "hepatic_vessel": 110.0, "spleen": 90.0, "kidney_cortex": 165.0,
                "kidney_medulla": 175.0, "urine": 250.0, "aorta": 120.0, "ivc": 115.0, "portal": 115.0,
                "artery": 120.0, "pancreas": 80.0, "bowel_wall": 80.0},
}
PHASES: tuple[str, ...] = tuple(PHASE_HU)


@dataclass(frozen=True)
class Appearance:
    """``phase``: one of :data:`PHASES`. ``fat_fraction``: mean fraction of the gland replaced by fat
    (0 = none; the real example's ~ -6 HU unenhanced gland is ~0.4), patchy around that mean.
    ``atrophy``: radius scale of the gland (1 = the anatomy's own size, 0.7 = a small gland)."""

    phase: str = "portal-venous"
    fat_fraction: float = 0.0
    atrophy: float = 1.0

    def __post_init__(self) -> None:
        if self.phase not in PHASE_HU:
            raise DataError(f"phantom phase must be one of {', '.join(PHASES)}; got {self.phase!r}")
        if not 0.0 <= self.fat_fraction <= 0.9:
            raise DataError(f"phantom fat_fraction must be in [0, 0.9], got {self.fat_fraction}")
        if not 0.5 <= self.atrophy <= 1.2:
            raise DataError(f"phantom atrophy must be in [0.5, 1.2], got {self.atrophy}")

    @classmethod
    def draw(cls, seed: int) -> Appearance:
        """A random appearance for ``seed``: every phase equally likely; half the glands fatty
        (mean fraction 0.15-0.6, more often in non-contrast, older-looking cases), a third atrophic."""
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 11]))
        phase = PHASES[int(rng.integers(len(PHASES)))]
        fat = float(rng.uniform(0.15, 0.6)) if rng.random() < 0.5 else float(rng.uniform(0.0, 0.1))
        atrophy = float(rng.uniform(0.7, 0.95)) if rng.random() < 0.33 else 1.0
        return cls(phase, round(fat, 3), round(atrophy, 3))

    @classmethod
    def parse(cls, value: Appearance | str | None, seed: int) -> Appearance:
        """``None`` -> portal venous, no fat (the phantoms of earlier versions); ``"random"`` -> :meth:`draw`;
        a phase name -> that phase without fat."""
        if isinstance(value, Appearance):
            return value
        if value is None:
            return cls()
        if value == "random":
            return cls.draw(seed)
        return cls(phase=str(value))

    def to_dict(self) -> dict:
        return asdict(self)

    def tissue_means(self, names: list[str], base: dict[str, tuple[float, float]], enhanced: tuple[str, ...],
                     enhancement: float) -> np.ndarray:
        """(n_tissues,) float32 mean HU of ``names`` in this phase, enhanced tissues scaled by ``enhancement``."""
        table = PHASE_HU[self.phase]
        mean = np.array([table.get(n, base[n][0]) for n in names], dtype=np.float32)
        for i, n in enumerate(names):
            if n in enhanced:
                mean[i] = UNENHANCED_BASE + (mean[i] - UNENHANCED_BASE) * enhancement
        return mean

    def fatty_gland(self, hu: np.ndarray, gland: np.ndarray, texture: np.ndarray, patches: np.ndarray) -> None:
        """Blend the gland's voxels (``gland``: bool mask) towards fat in place: local fraction =
        ``fat_fraction`` modulated by the smooth field ``patches`` (zero mean, unit std), clipped to [0, 0.95]."""
        if self.fat_fraction <= 0.0:
            return
        local = np.clip(self.fat_fraction * (1.0 + 0.9 * patches[gland]), 0.0, 0.95)
        hu[gland] = (1.0 - local) * hu[gland] + local * (FAT_HU + 8.0 * texture[gland])
