"""Seeded synthetic abdominal CT phantoms: a stand-in for pancreas data that cannot be downloaded.

``generate_phantom(seed)`` returns a CT-like volume in the canonical frame — arrays ``(X, Y, Z)``
along the patient's ``(R, A, S)`` with an RAS+ affine (index ``i`` grows towards the patient's
right, ``j`` anterior, ``k`` superior) — and a multi-organ label map whose ids follow
TotalSegmentator's "total" class map (:data:`PHANTOM_LABELS`, pancreas = 7). The anatomy is
described in ``docs/phantoms.md``; the shapes and HU values live in
:mod:`rstn_core.data.phantom_anatomy`.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from rstn_core.atomic import atomic_write
from rstn_core.data.phantom_anatomy import TISSUE_IDS, TISSUES, Canvas, Grid, paint_abdomen, smooth_noise
from rstn_core.data.phantom_appearance import Appearance
from rstn_core.data.phantom_pancreas import apply_lie
from rstn_core.data.phantom_pelvis import sample_pelvis
from rstn_core.errors import DataError

log = logging.getLogger(__name__)

#: label id -> name (TotalSegmentator "total" ids). 0 = everything else (fat, wall muscles, table, air).
PHANTOM_LABELS: dict[int, str] = {
    1: "spleen", 2: "kidney_right", 3: "kidney_left", 4: "gallbladder", 5: "liver", 6: "stomach",
    7: "pancreas", 11: "lung_lower_lobe_left", 14: "lung_lower_lobe_right", 18: "small_bowel",
    19: "duodenum", 20: "colon", 27: "vertebrae_L5", 28: "vertebrae_L4", 29: "vertebrae_L3",
    30: "vertebrae_L2", 31: "vertebrae_L1", 32: "vertebrae_T12", 33: "vertebrae_T11", 52: "aorta",
    63: "inferior_vena_cava", 64: "portal_vein_and_splenic_vein", 77: "hip_left", 78: "hip_right",
    21: "urinary_bladder", 25: "sacrum", 75: "femur_left", 76: "femur_right", 79: "spinal_cord",
    86: "autochthon_left", 87: "autochthon_right", 88: "iliopsoas_left",
    89: "iliopsoas_right", 98: "rib_left_7", 99: "rib_left_8", 100: "rib_left_9", 101: "rib_left_10",
    102: "rib_left_11", 103: "rib_left_12", 110: "rib_right_7", 111: "rib_right_8", 112: "rib_right_9",
    113: "rib_right_10", 114: "rib_right_11", 115: "rib_right_12", 117: "costal_cartilages",
}
PANCREAS_ID = 7
DEFAULT_FOV_MM = (384.0, 336.0, 240.0)  # (R, A, S) extent of the default grid
#: field of view -> cranio-caudal extent (mm) from just above the liver dome down
FIELDS_OF_VIEW: dict[str, float] = {"abdomen": 240.0, "abdomen-pelvis": 400.0}
#: 1: the oblique gland of every phantom and no pelvis (the demo bundles were trained on it);
#: 2: the gland's lie drawn from dissection frequencies (phantom_pancreas) and the pelvis (phantom_pelvis)
ANATOMY_VERSIONS = (1, 2)
ANATOMY_VERSION = 2
#: the anatomy the committed demo bundles were trained on (also in rstn_core/demo/demo.json): the app's demo
#: case, the notebooks' and benchmarks' demo phantoms use it, so that the built-in model meets its own kind
DEMO_ANATOMY = 1
ENHANCED = ("liver", "hepatic_vessel", "spleen", "kidney_cortex", "kidney_medulla", "aorta", "ivc",
            "portal", "artery", "pancreas", "bowel_wall")


@dataclass(frozen=True)
class Phantom:
    """One synthetic case in the canonical frame.

    ``hu``: (X, Y, Z) int16 Hounsfield units along (R, A, S). ``labels``: (X, Y, Z) uint8 ids of
    :data:`PHANTOM_LABELS`. ``affine``: (4, 4) float64 voxel -> world RAS mm (diagonal = spacing).
    ``meta``: the sampled anatomy parameters (JSON-serialisable), the seed and the grid.
    """

    hu: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    meta: dict = field(default_factory=dict)


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def sample_anatomy(rng: np.random.Generator) -> dict:
    """Draw body habitus, organ sizes and positions (mm, body frame; see phantom_anatomy).

    Returns a plain dict of floats/lists (stored in ``Phantom.meta['anatomy']``).
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


def _default_shape(spacing: tuple[float, float, float], fov: str = "abdomen") -> tuple[int, int, int]:
    extent = (*DEFAULT_FOV_MM[:2], FIELDS_OF_VIEW[fov])
    return tuple(int(round(f / s)) for f, s in zip(extent, spacing))  # type: ignore[return-value]


def _parse_fov(fov: str | None, seed: int) -> str:
    """``None`` -> abdomen; ``"random"`` -> drawn from the seed (own stream, even odds); else a known name."""
    if fov is None:
        return "abdomen"
    if fov == "random":
        rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 13]))
        return "abdomen-pelvis" if rng.uniform() < 0.5 else "abdomen"
    if fov not in FIELDS_OF_VIEW:
        raise DataError(f"phantom field of view must be one of {sorted(FIELDS_OF_VIEW)} or 'random', got {fov!r}")
    return fov


def _anatomy(seed: int, version: int) -> tuple[dict, np.random.Generator]:
    """The sampled anatomy of ``seed``: version 1's draws, then version 2's lie and pelvis from own streams."""
    if version not in ANATOMY_VERSIONS:
        raise DataError(f"phantom anatomy version must be one of {ANATOMY_VERSIONS}, got {version!r}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 7]))
    p = sample_anatomy(rng)
    p["anatomy_version"] = int(version)
    if version >= 2:
        extra = np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, 11]))
        apply_lie(p, extra, cz=float(p["portal_path"][0][2]))
        sample_pelvis(p, extra)
    return p, rng


def render_hu(canvas: Canvas, p: dict, rng: np.random.Generator, appearance: Appearance | None = None) -> np.ndarray:
    """Tissue map -> HU: per-tissue mean (of the ``appearance``'s contrast phase) and texture, fatty
    replacement of the gland, partial-volume blur, correlated noise.

    Returns (X, Y, Z) int16 HU clipped to [-1024, 3071].
    """
    appearance = appearance or Appearance()
    names = list(TISSUES)
    mean = appearance.tissue_means(names, TISSUES, ENHANCED, p["enhancement"])
    tex = np.array([TISSUES[n][1] for n in names], dtype=np.float32)
    spacing = canvas.grid.spacing
    texture = smooth_noise(rng, canvas.tissue.shape, spacing, 8.0)
    hu = mean[canvas.tissue] + tex[canvas.tissue] * texture
    if appearance.fat_fraction > 0:
        gland = canvas.tissue == TISSUE_IDS["pancreas"]
        appearance.fatty_gland(hu, gland, texture, smooth_noise(rng, canvas.tissue.shape, spacing, 6.0))
    hu = ndimage.gaussian_filter(hu, sigma=p["blur_vox"], mode="nearest")
    noise = rng.standard_normal(hu.shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=0.7)
    noise *= p["noise_std"] / max(float(noise.std()), 1e-6)
    hu += noise
    return np.clip(np.rint(hu), -1024, 3071).astype(np.int16)


def generate_phantom(seed: int, shape: tuple[int, int, int] | None = None,
                     spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
                     appearance: Appearance | str | None = None, anatomy: int = ANATOMY_VERSION,
                     fov: str | None = None) -> Phantom:
    """Generate one seeded abdominal CT phantom.

    ``seed``: any int; the same seed, shape and spacing give identical arrays.
    ``shape``: (X, Y, Z) voxels along (R, A, S); default: the ``fov``'s extent, 384 x 336 mm in plane and
    240 mm from the liver dome to the iliac crest (``"abdomen"``, 128 x 112 x 80 at 3 mm) or 400 mm down to
    the femoral heads (``"abdomen-pelvis"``, needs ``anatomy`` 2); ``"random"``: drawn from the seed.
    ``anatomy``: version of the anatomy (:data:`ANATOMY_VERSIONS`; 1 = the phantoms the demo bundles were
    trained on). Version 2 keeps every organ of version 1 for the same seed, draws the gland's lie from
    dissection frequencies and adds the pelvis.
    ``spacing``: (3,) mm along (R, A, S).
    ``appearance``: contrast phase, fatty infiltration and atrophy of the gland
    (:class:`~rstn_core.data.phantom_appearance.Appearance`; ``None`` = portal venous, no fat; ``"random"``
    = drawn from the seed, independently of the anatomy; or a phase name).
    Raises :class:`DataError` for a grid too small to hold the pancreas with a 2-slice margin.
    """
    spacing = tuple(float(s) for s in spacing)  # type: ignore[assignment]
    if len(spacing) != 3 or min(spacing) <= 0:
        raise DataError(f"phantom spacing must be three positive mm values, got {spacing}")
    fov = _parse_fov(fov, seed)
    if fov != "abdomen" and anatomy < 2:
        raise DataError(f"phantom field of view {fov!r} needs anatomy version 2 (version {anatomy} has no pelvis)")
    shape = _default_shape(spacing, fov) if shape is None else tuple(int(s) for s in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 16:
        raise DataError(f"phantom shape must be three sizes >= 16, got {shape}")
    p, rng = _anatomy(seed, anatomy)
    look = Appearance.parse(appearance, seed)
    if look.atrophy != 1.0 and anatomy == 1:
        p["pancreas_r"] = [r * look.atrophy for r in p["pancreas_r"]]
    elif look.atrophy != 1.0:  # applied after the 1.5 %-of-a-slice cap, so that it always shows
        p["pancreas_atrophy"] = look.atrophy
    grid = Grid(shape, spacing, z_top=p["z_dome"] + 8.0, rng=rng, warp_mm=p["warp_mm"])  # type: ignore[arg-type]
    canvas = Canvas(grid)
    paint_abdomen(canvas, p, rng)
    hu = render_hu(canvas, p, rng, look)
    labels = canvas.labels
    zs = np.nonzero((labels == PANCREAS_ID).any(axis=(0, 1)))[0]
    if zs.size == 0 or zs[0] < 2 or zs[-1] > shape[2] - 3:
        raise DataError(f"phantom grid {shape} at {spacing} mm does not hold the pancreas with a 2-slice margin "
                        f"(pancreas slices {zs.min() if zs.size else None}..{zs.max() if zs.size else None}); "
                        "use more slices or a larger spacing")
    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [float(grid.x[0]), float(grid.y[0]), float(grid.z[0])]
    meta = {"seed": int(seed), "shape": list(shape), "spacing": list(spacing), "anatomy": p, "fov": fov,
            "anatomy_version": int(anatomy),
            "appearance": look.to_dict(), "pancreas_voxels": int((labels == PANCREAS_ID).sum())}
    return Phantom(hu=hu, labels=labels, affine=affine, meta=meta)


# ----------------------------------------------------------------------------------------------
# Datasets on disk
# ----------------------------------------------------------------------------------------------
MARKER = "phantom.json"


def case_seed(seed: int, index: int) -> int:
    """Seed of case ``index`` of a dataset drawn with ``seed`` (deterministic, well mixed)."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(index)]).generate_state(1)[0])


def _atomic_bytes(path: Path, writer) -> None:
    atomic_write(path, writer)


def _save_nifti(array: np.ndarray, affine: np.ndarray, path: Path) -> None:
    import nibabel as nib

    img = nib.Nifti1Image(array, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)

    def write(tmp: str) -> None:
        # nibabel chooses compression from the extension: write under a .nii.gz temp name
        nib.save(img, tmp + ".nii.gz")
        os.replace(tmp + ".nii.gz", tmp)

    _atomic_bytes(path, write)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"phantom output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / MARKER).is_file() and not overwrite:
            raise DataError(f"refusing to write phantoms into non-empty folder {out} that is not a phantom "
                            "dataset (no phantom.json); choose an empty folder or pass --overwrite")
        if (out / MARKER).is_file() and not overwrite:
            raise DataError(f"{out} already holds a phantom dataset; pass --overwrite to replace it")


def write_phantom_dataset(out_dir: str | os.PathLike, n: int, seed: int, fmt: str = "nifti",
                          shape: tuple[int, int, int] | None = None,
                          spacing: tuple[float, float, float] = (3.0, 3.0, 3.0),
                          overwrite: bool = False, progress=None,
                          appearance: Appearance | str | None = None, anatomy: int = ANATOMY_VERSION,
                          fov: str | None = None) -> list[dict]:
    """Write ``n`` phantoms in the generic manifest layout.

    ``out/images/<case_id>.nii.gz`` (or ``out/images/<case_id>/`` DICOM series for ``fmt="dicom"``),
    ``out/labels/<case_id>.nii.gz``, ``out/manifest.csv`` (case_id,image,label; paths relative to
    ``out``), ``out/dataset.json`` (``name`` "rstn-phantoms", ``target_labels`` [7]; read by
    :func:`rstn_core.data.layouts.discover_dataset`), ``out/labels.json`` (id -> name) and
    ``out/phantom.json`` (seeds and parameters).
    Case ``i`` is ``phantom_{i:03d}`` drawn with :func:`case_seed` ``(seed, i)``. Every file is written
    atomically. ``progress``: optional callable wrapping the case iterator (e.g. ``tqdm``).
    ``appearance``, ``anatomy``, ``fov``: as in :func:`generate_phantom` (``"random"``: each case its own).
    Returns the manifest rows.
    """
    if n < 1:
        raise DataError(f"number of phantoms must be >= 1, got {n}")
    if fmt not in ("nifti", "dicom"):
        raise DataError(f"phantom format must be 'nifti' or 'dicom', got {fmt!r}")
    out = Path(out_dir)
    _check_out_dir(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    rows, cases_meta = [], []
    indices = range(n) if progress is None else progress(range(n))
    for i in indices:
        case_id = f"phantom_{i:03d}"
        ph = generate_phantom(case_seed(seed, i), shape=shape, spacing=spacing, appearance=appearance,
                              anatomy=anatomy, fov=fov)
        label_rel = f"labels/{case_id}.nii.gz"
        _save_nifti(ph.labels, ph.affine, out / label_rel)
        if fmt == "nifti":
            image_rel = f"images/{case_id}.nii.gz"
            _save_nifti(ph.hu, ph.affine, out / image_rel)
        else:
            image_rel = f"images/{case_id}"
            _write_dicom(ph, out / image_rel)
        rows.append({"case_id": case_id, "image": image_rel, "label": label_rel})
        cases_meta.append({"case_id": case_id, **{k: v for k, v in ph.meta.items() if k != "anatomy"}})
        log.debug("phantom %s: %d pancreas voxels", case_id, ph.meta["pancreas_voxels"])

    def write_csv(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["case_id", "image", "label"])
            w.writeheader()
            w.writerows(rows)

    def write_json(obj):
        def _w(tmp: str) -> None:
            Path(tmp).write_text(json.dumps(obj, indent=2))
        return _w

    _atomic_bytes(out / "manifest.csv", write_csv)
    _atomic_bytes(out / "labels.json", write_json({str(k): v for k, v in PHANTOM_LABELS.items()}))
    # read by rstn_core.data.layouts beside manifest.csv: declares the target (pancreas = 7)
    _atomic_bytes(out / "dataset.json", write_json({
        "name": "rstn-phantoms", "target_labels": [PANCREAS_ID],
        "labels": {str(k): v for k, v in PHANTOM_LABELS.items()},
        "format": fmt, "seed": int(seed), "n": n, "generator": "rstn_core.data.phantom"}))
    _atomic_bytes(out / MARKER, write_json({"generator": "rstn_core.data.phantom", "seed": int(seed), "n": n,
                                            "format": fmt, "target_labels": [PANCREAS_ID],
                                            "appearance": appearance if isinstance(appearance, str | None)
                                            else appearance.to_dict(), "anatomy_version": int(anatomy),
                                            "fov": fov or "abdomen", "cases": cases_meta}))
    return rows


def _write_dicom(ph: Phantom, folder: Path) -> None:
    try:
        from rstn_core.dicom import write_dicom_series
    except ImportError as exc:  # pragma: no cover - depends on a sibling module
        raise DataError(f"DICOM output needs rstn_core.dicom.write_dicom_series: {exc}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    write_dicom_series(ph.hu, ph.affine, folder)
