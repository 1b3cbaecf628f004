"""The sampled anatomy of one phantom as a typed, frozen parameter object (mm, body frame).

:func:`draw_anatomy` draws version 1's parameters from the seed's main stream (the draw order is the
phantoms' identity: changing it changes every seed), then version 2's lie of the gland
(:mod:`~rstn_core.data.phantom_pancreas`) and pelvis (:mod:`~rstn_core.data.phantom_pelvis`) from streams of
their own. The painters read :class:`Anatomy` attributes; ``Phantom.meta["anatomy"]`` holds
:meth:`Anatomy.to_dict` (plain JSON).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from rstn_core.errors import DataError

ANATOMY_VERSIONS = (1, 2)


@dataclass(frozen=True, kw_only=True)
class Anatomy:
    """Every drawn size and position of one phantom (x Right, y Anterior, z Superior; mm)."""

    # body habitus and wall (mm)
    habitus: float
    fat_sub_mm: float
    wall_mm: float
    body_a: float
    body_b: float
    body_yc: float
    muscle_scale: float
    # spine and levels (z of L1, the diaphragm dome, waist, iliac crest; mm)
    vb_rx: float
    vb_ry: float
    vb_y: float
    vert_pitch: float
    disc_mm: float
    z_L1: float
    z_dome: float
    z_waist: float
    z_crest: float
    rib_drop: float
    # solid organs: centres and semi-axes (mm)
    liver_c: list[float]
    liver_semi: list[float]
    liver_left_semi: list[float]
    spleen_c: list[float]
    spleen_semi: list[float]
    kidney_semi: list[float]
    kidney_c_r: list[float]
    kidney_c_l: list[float]
    gallbladder: bool
    gb_c: list[float]
    gb_semi: list[float]
    # vessels: centre lines (N, 3) and radii (mm)
    aorta_path: list[list[float]]
    aorta_r: list[float]
    ivc_path: list[list[float]]
    ivc_r: list[float]
    portal_path: list[list[float]]
    portal_r: list[float]
    splenic_path: list[list[float]]
    splenic_r: list[float]
    smv_path: list[list[float]]
    sma_path: list[list[float]]
    lrv_path: list[list[float]]
    # the gland: centre line uncinate..tail tip (7, 3), radii, lobulation, fat clefts, slice-area cap
    pancreas_path: list[list[float]]
    pancreas_r: list[float]
    pancreas_lobulation: float
    pancreas_cleft: float
    pancreas_max_fraction: float
    # hollow organs
    duodenum_path: list[list[float]]
    duodenum_r: list[float]
    stomach_path: list[list[float]]
    stomach_r: list[float]
    stomach_air_level: float
    oral_contrast: bool
    colon_path: list[list[float]]
    colon_r: list[float]
    z_mesocolon: float
    bowel_r: float
    bowel_wall_mm: float
    bowel_walks: int
    bowel_steps: int
    # imaging: displacement field, enhancement factor, noise std (HU), blur (voxels)
    warp_mm: float
    enhancement: float
    noise_std: float
    blur_vox: float
    anatomy_version: int = 1
    # version 2 only (None / defaults in version 1)
    pancreas_lie: str | None = None
    pancreas_atrophy: float = 1.0  # applied after the slice-area cap (version 1 scales pancreas_r instead)
    z_sacrum: float | None = None  # top of S1; None = no pelvis (version 1 paints only the iliac crests)
    sacrum_len: float = 0.0
    z_acetabulum: float = 0.0
    pelvis_scale: float = 1.0
    femoral_head_r: float = 0.0
    bladder_semi: list[float] | None = None
    bladder_dz: float = 0.0
    rectum_r: float = 0.0

    @property
    def has_pelvis(self) -> bool:
        return self.z_sacrum is not None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Anatomy:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DataError(f"phantom anatomy: unknown parameters {unknown}")
        return cls(**data)


def draw_anatomy(seed: int, version: int, atrophy: float = 1.0) -> tuple[Anatomy, np.random.Generator]:
    """The anatomy of ``seed`` in ``version`` (:data:`ANATOMY_VERSIONS`), with the gland shrunk by ``atrophy``.

    Returns the anatomy and the seed's main generator, positioned after the anatomy draws (the painters and
    the renderer continue on it).
    """
    from rstn_core.data.phantom_pancreas import apply_lie
    from rstn_core.data.phantom_pelvis import sample_pelvis

    if version not in ANATOMY_VERSIONS:
        raise DataError(f"phantom anatomy version must be one of {ANATOMY_VERSIONS}, got {version!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7]))
    p = sample_anatomy(rng)
    p["anatomy_version"] = int(version)
    if version >= 2:
        # tag 11 is also the tag of Appearance.draw's stream (phantom_appearance): with a drawn appearance the
        # lie and pelvis read the same numbers as the phase, fat and atrophy draws, so those are correlated per
        # seed. Kept: the version-2 sets and the built-in bundles were made with it; a new version gets its own tag.
        extra = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 11]))
        apply_lie(p, extra, cz=float(p["portal_path"][0][2]))
        sample_pelvis(p, extra)
        p["pancreas_atrophy"] = float(atrophy)
    elif atrophy != 1.0:
        p["pancreas_r"] = [r * atrophy for r in p["pancreas_r"]]
    return Anatomy.from_dict(p), rng


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_anatomy(rng: np.random.Generator) -> dict:
    """Draw body habitus, organ sizes and positions (mm, body frame; see phantom_anatomy).

    Returns a plain dict of floats/lists (version 1's parameters; :func:`draw_anatomy` makes the
    :class:`Anatomy`).
    """
    u = lambda lo, hi: _u(rng, lo, hi)  # noqa: E731
    habitus = u(0.0, 1.0)  # 0 = thin, 1 = obese
    p: dict = {"habitus": habitus}
    p["fat_sub_mm"] = 6.0 + 34.0 * habitus**1.3 + u(-3, 3)
    p["wall_mm"] = u(5.0, 8.0)
    p["body_a"] = 138.0 + 40.0 * habitus + u(-6, 6)
    p["body_b"] = 118.0 + 42.0 * habitus + u(-6, 6)
    p["body_yc"] = u(0.0, 10.0)
    p["muscle_scale"] = u(0.8, 1.2)
    p["vb_rx"], p["vb_ry"] = u(17.0, 20.0), u(13.0, 15.5)
    p["vb_y"] = p["body_yc"] - 0.78 * p["body_b"] + p["fat_sub_mm"] + u(80.0, 88.0)
    p["vert_pitch"], p["disc_mm"] = u(33.0, 38.0), u(7.0, 10.0)
    p["z_L1"] = u(-14.0, -4.0)
    p["z_dome"] = p["z_L1"] + u(95.0, 115.0)
    p["z_waist"] = p["z_L1"] - u(20.0, 60.0)
    p["z_crest"] = p["z_L1"] - 3.3 * p["vert_pitch"] + u(-8, 8)
    p["rib_drop"] = u(95.0, 125.0)
    yp = p["vb_y"] + p["vb_ry"]  # front of the vertebral bodies
    y_front = p["body_yc"] + p["body_b"] - 1.35 * p["fat_sub_mm"] - 1.5 * p["wall_mm"]
    x_cav = p["body_a"] - p["fat_sub_mm"] - p["wall_mm"]
    j = lambda s=4.0: u(-s, s)  # noqa: E731
    dome = p["z_dome"]
    p["liver_c"] = [u(72, 85), p["body_yc"] + u(0, 12), dome - u(58, 68)]
    p["liver_semi"] = [u(62, 74), u(68, 82), u(58, 68)]
    p["liver_left_semi"] = [u(42, 58), u(28, 36), u(24, 32)]
    p["spleen_c"] = [-(x_cav - u(28, 38)), p["vb_y"] + u(0, 15), p["z_L1"] + u(40, 55)]
    sp = u(0.8, 1.15)
    p["spleen_semi"] = [20 * sp, 52 * sp, 42 * sp]
    ks = u(0.9, 1.1)
    p["kidney_semi"] = [24 * ks, 20 * ks, 50 * ks]
    p["kidney_c_r"] = [u(60, 70), p["vb_y"] + u(-2, 6), p["z_L1"] - u(20, 35)]
    p["kidney_c_l"] = [-u(60, 70), p["vb_y"] + u(-2, 6), p["z_L1"] - u(5, 20)]
    p["gallbladder"] = bool(rng.uniform() < 0.8)
    p["gb_c"] = [u(40, 55), y_front - u(25, 40), p["z_L1"] + u(0, 20)]
    p["gb_semi"] = [u(11, 15), u(11, 15), u(25, 38)]
    ax, ay = -u(8, 16), yp + u(10, 14)
    z_top = dome + 8.0
    z_bif = p["z_L1"] - u(2.6, 3.0) * p["vert_pitch"]
    ar = u(9.0, 12.0)
    p["aorta_path"] = [[ax, ay - 3, z_top + 20], [ax, ay, p["z_L1"]], [ax + 2, ay + 3, z_bif]]
    p["aorta_r"] = [ar, ar * 0.95, ar * 0.85]
    ix = u(20, 26)
    p["ivc_path"] = [[ix, yp + 8, z_bif - 40], [ix, yp + 10, p["z_L1"]], [ix + 4, yp + 20, p["z_L1"] + 60],
                     [ix, yp + 24, z_top + 20]]
    p["ivc_r"] = [u(9, 11), u(10, 12), u(11, 13), u(11, 14)]
    cx, cy, cz = u(2, 10), yp + u(27, 33), u(0, 8)  # spleno-portal confluence
    p["portal_path"] = [[cx, cy, cz], [cx + 20, cy + 6, cz + 20], [cx + 40, cy + 8, cz + 35]]
    p["portal_r"] = [u(6, 8)] * 3
    tail_rise = u(15.0, 40.0)
    tail_x = -(x_cav - u(45, 60))
    p["splenic_path"] = [[cx, cy, cz], [cx - 28, cy - 4, cz + 6 + 0.2 * tail_rise],
                         [cx - 58, cy - 14, cz + 12 + 0.5 * tail_rise],
                         [tail_x, yp - 2, cz + 18 + 0.8 * tail_rise], [tail_x - 12, yp - 10, cz + 22 + tail_rise]]
    p["splenic_r"] = [u(4, 5.5)] * 5
    p["smv_path"] = [[cx, cy, cz], [cx + 2, cy + 2, cz - 25], [cx + 4, cy + 5, cz - 80]]
    p["sma_path"] = [[ax, ay, cz + 12], [ax + 4, ay + 16, cz + 4], [cx - 9, cy + 2, cz - 22], [cx - 8, cy + 6, cz - 80]]
    p["lrv_path"] = [[p["kidney_c_l"][0] + 18, p["vb_y"] + 6, p["kidney_c_l"][2] + 5],
                     [ax - 14, yp + 14, cz - 6], [ix - 6, yp + 14, cz - 8]]
    # pancreas centre line: uncinate, head, neck, body, body, tail, tail tip (x, y, z)
    ps = u(0.85, 1.1)
    # (head in the C-loop anterior to the IVC, neck anterior to the confluence, body anterior to the
    # aorta/SMA and ~10 mm in front of the splenic vein, tail towards the splenic hilum)
    p["pancreas_path"] = [
        [ix + j(3), yp + 17 + j(2), cz - 24 + j(4)],
        [ix + 14 + j(3), cy + j(2), cz - 10 + j(3)],
        [cx + 2 + j(3), cy + 14 + j(2), cz + j(2)],
        [cx - 28 + j(3), cy + 10 + j(2), cz + 6 + 0.25 * tail_rise],
        [cx - 58 + j(3), cy + 1 + j(2), cz + 12 + 0.55 * tail_rise],
        [tail_x + 8, yp + 9 + j(2), cz + 18 + 0.85 * tail_rise],
        [tail_x - 2, yp + 3 + j(2), cz + 21 + tail_rise],
    ]
    p["pancreas_r"] = [r * ps for r in (9.0, 12.0, 8.5, 9.0, 8.5, 8.0, 6.5)]
    p["pancreas_lobulation"] = u(0.10, 0.18)
    p["pancreas_cleft"] = u(1.9, 2.4)
    p["pancreas_max_fraction"] = 0.0145
    pyl = [ix + u(2, 8), y_front - u(20, 30), cz + u(8, 14)]
    p["duodenum_path"] = [pyl, [ix + 28, pyl[1] - 12, cz + 10], [ix + 38, yp + 32, cz], [ix + 40, yp + 24, cz - 20],
                          [ix + 32, yp + 20, cz - 40], [ix + 4, yp + 17, cz - 48], [ax - 2, yp + 18, cz - 48],
                          [ax - 16, yp + 22, cz - 38], [ax - 24, yp + 30, cz - 24]]
    p["duodenum_r"] = [u(9, 12)] * 9
    gs = u(0.75, 1.2)
    p["stomach_path"] = [[-u(40, 55), p["vb_y"] + u(20, 35), dome - 22], [-u(50, 65), yp + 30, dome - 55],
                         [-u(35, 50), y_front - 35, dome - 90], [-u(0, 10), y_front - 25, cz + 14], pyl]
    p["stomach_r"] = [36 * gs, 36 * gs, 30 * gs, 20 * gs, 9.0]
    p["stomach_air_level"] = y_front - 35 * gs - u(-10, 15)
    p["oral_contrast"] = bool(rng.uniform() < 0.5)
    zb = z_top - 300.0
    cr = u(17, 24)
    p["colon_path"] = [[x_cav - 30, yp + 5, zb], [x_cav - 28, yp + 12, p["z_L1"] - 60],
                       [x_cav - 38, yp + 30, p["z_L1"] - 5], [ix + 15, y_front - cr - 5, cz - u(25, 50)],
                       [-30, y_front - cr - 5, cz - u(20, 45)], [-(x_cav - 30), yp + 25, p["z_L1"] + u(25, 40)],
                       [-(x_cav - 20), p["vb_y"] + 15, p["z_L1"] - 20], [-(x_cav - 25), p["vb_y"] + 15, zb]]
    p["colon_r"] = [cr * u(0.8, 1.1) for _ in range(8)]
    p["z_mesocolon"] = p["z_L1"] - u(5, 25)
    p["bowel_r"] = u(9.0, 12.0)
    p["bowel_wall_mm"] = u(2.0, 3.0)
    p["bowel_walks"] = int(rng.integers(28, 40))
    p["bowel_steps"] = int(rng.integers(90, 150))
    p["warp_mm"] = u(4.0, 8.0)
    p["enhancement"] = u(0.85, 1.15)
    p["noise_std"] = u(10.0, 20.0)
    p["blur_vox"] = u(0.55, 0.8)
    return p
