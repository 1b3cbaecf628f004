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
from rstn_core.data.phantom_anatomy import TISSUE_IDS, TISSUES, Canvas, Grid, smooth_noise
from rstn_core.data.phantom_appearance import Appearance
from rstn_core.data.phantom_organs import paint_abdomen
from rstn_core.data.phantom_params import ANATOMY_VERSIONS, Anatomy, draw_anatomy  # noqa: F401 (ANATOMY_VERSIONS: public)
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
#: 1: the oblique gland of every phantom and no pelvis (the first demo bundles were trained on it);
#: 2: the gland's lie drawn from dissection frequencies (phantom_pancreas) and the pelvis (phantom_pelvis)
ANATOMY_VERSION = 2
#: the anatomy the committed demo bundles were last trained on (also in rstn_core/demo/demo.json: trained on
#: version 1, fine-tuned on version 2): the app's demo case, the notebooks' and benchmarks' demo phantoms use
#: it, so that the built-in model meets its own kind
DEMO_ANATOMY = 2
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


def default_shape(spacing, fov: str = "abdomen") -> tuple[int, int, int]:
    """(X, Y, Z) voxels of the default grid at ``spacing`` mm for field of view ``fov`` ("random": the largest)."""
    depth = max(FIELDS_OF_VIEW.values()) if fov == "random" else FIELDS_OF_VIEW[fov]
    extent = (*DEFAULT_FOV_MM[:2], depth)
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


def render_hu(canvas: Canvas, a: Anatomy, rng: np.random.Generator, appearance: Appearance | None = None) -> np.ndarray:
    """Tissue map -> HU: per-tissue mean (of the ``appearance``'s contrast phase) and texture, fatty
    replacement of the gland, partial-volume blur, correlated noise.

    Returns (X, Y, Z) int16 HU clipped to [-1024, 3071].
    """
    appearance = appearance or Appearance()
    names = list(TISSUES)
    mean = appearance.tissue_means(names, TISSUES, ENHANCED, a.enhancement)
    tex = np.array([TISSUES[n][1] for n in names], dtype=np.float32)
    spacing = canvas.grid.spacing
    texture = smooth_noise(rng, canvas.tissue.shape, spacing, 8.0)
    hu = mean[canvas.tissue] + tex[canvas.tissue] * texture
    if appearance.fat_fraction > 0:
        gland = canvas.tissue == TISSUE_IDS["pancreas"]
        appearance.fatty_gland(hu, gland, texture, smooth_noise(rng, canvas.tissue.shape, spacing, 6.0))
    hu = ndimage.gaussian_filter(hu, sigma=a.blur_vox, mode="nearest")
    noise = rng.standard_normal(hu.shape).astype(np.float32)
    noise = ndimage.gaussian_filter(noise, sigma=0.7)
    noise *= a.noise_std / max(float(noise.std()), 1e-6)
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
    shape = default_shape(spacing, fov) if shape is None else tuple(int(s) for s in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 16:
        raise DataError(f"phantom shape must be three sizes >= 16, got {shape}")
    look = Appearance.parse(appearance, seed)
    a, rng = draw_anatomy(seed, anatomy, atrophy=look.atrophy)
    grid = Grid(shape, spacing, z_top=a.z_dome + 8.0, rng=rng, warp_mm=a.warp_mm)  # type: ignore[arg-type]
    canvas = Canvas(grid)
    paint_abdomen(canvas, a, rng)
    hu = render_hu(canvas, a, rng, look)
    labels = canvas.labels
    zs = np.nonzero((labels == PANCREAS_ID).any(axis=(0, 1)))[0]
    if zs.size == 0 or zs[0] < 2 or zs[-1] > shape[2] - 3:
        raise DataError(f"phantom grid {shape} at {spacing} mm does not hold the pancreas with a 2-slice margin "
                        f"(pancreas slices {zs.min() if zs.size else None}..{zs.max() if zs.size else None}); "
                        "use more slices or a larger spacing")
    affine = np.diag([spacing[0], spacing[1], spacing[2], 1.0])
    affine[:3, 3] = [float(grid.x[0]), float(grid.y[0]), float(grid.z[0])]
    meta = {"seed": int(seed), "shape": list(shape), "spacing": list(spacing), "anatomy": a.to_dict(), "fov": fov,
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
