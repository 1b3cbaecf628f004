"""``rstn phantoms``: write a seeded dataset of synthetic abdominal CT phantoms."""

from __future__ import annotations

import argparse

HELP = "write synthetic abdominal CT phantoms (pancreas = label 7) as a manifest dataset"
DESCRIPTION = """Write N seeded CT-like abdominal phantoms with TotalSegmentator-style multi-organ labels.

Layout: OUT/images/<case>.nii.gz (or a DICOM series folder), OUT/labels/<case>.nii.gz,
OUT/manifest.csv, OUT/labels.json, OUT/phantom.json. Case i uses a seed derived from (--seed, i).
The model, label ids and HU table are described in docs/phantoms.md.

Example:
  rstn phantoms --out data/phantoms --n 8 --seed 0 --preview
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (empty, or a phantom dataset with --overwrite)")
    parser.add_argument("--n", type=int, default=8, help="number of cases (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--format", choices=("nifti", "dicom"), default="nifti", help="image format")
    parser.add_argument("--spacing", type=float, nargs=3, default=(3.0, 3.0, 3.0), metavar=("R", "A", "S"),
                        help="voxel size in mm (default 3 3 3)")
    parser.add_argument("--shape", type=int, nargs=3, default=None, metavar=("X", "Y", "Z"),
                        help="grid size in voxels (default: ~384 x 336 x 240 mm at the spacing)")
    parser.add_argument("--appearance", default="random",
                        choices=("random", "non-contrast", "arterial", "portal-venous", "delayed"),
                        help="contrast phase of every case, or 'random' (default): each case its own phase, "
                             "fatty infiltration and atrophy of the gland (docs/phantoms.md)")
    parser.add_argument("--anatomy", type=int, default=2, choices=(1, 2),
                        help="anatomy version: 2 (default) draws the gland's lie from dissection frequencies and "
                             "has a pelvis; 1 is the set the demo bundles were trained on")
    parser.add_argument("--fov", default="random", choices=("random", "abdomen", "abdomen-pelvis"),
                        help="cranio-caudal field of view: abdomen (240 mm, dome to iliac crest), abdomen-pelvis "
                             "(400 mm, to the femoral heads; anatomy 2) or random (default): each case its own")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    parser.add_argument("--preview", action="store_true", help="also write axial/coronal PNGs to OUT/preview/")


def check_grid(shape, spacing, fov: str = "abdomen") -> None:
    """Refuse a phantom grid above :data:`rstn_core.limits.MAX_PHANTOM_VOXELS` before generating it."""
    from rstn_core.data.phantom import default_shape
    from rstn_core.errors import RstnError
    from rstn_core.limits import MAX_PHANTOM_VOXELS, check_voxels

    if any(not (s > 0) or s != s or s == float("inf") for s in spacing):
        raise RstnError(f"--spacing must be three positive finite mm values, got {list(spacing)}")
    if shape is None:
        shape = default_shape(spacing, fov)
        what = f"--spacing {' '.join(f'{s:g}' for s in spacing)} (field of view {fov})"
    else:
        what = f"--shape {' '.join(map(str, shape))}"
    check_voxels(shape, what, MAX_PHANTOM_VOXELS, hint="; use a larger --spacing or a smaller --shape")


def check_out(out, overwrite: bool) -> None:
    from rstn_core.data.phantom import MARKER
    from rstn_core.errors import DataError

    if out.exists() and not out.is_dir():
        raise DataError(f"phantom output {out} exists and is not a folder")
    if out.is_dir():  # staging folders of a run that was killed
        import shutil

        for stale in [*out.glob(".rstn-new-*"), *out.glob(".rstn-old-*")]:
            shutil.rmtree(stale, ignore_errors=True)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        if (out / MARKER).is_file():
            raise DataError(f"{out} already holds a phantom dataset; pass --overwrite to replace it")
        raise DataError(f"refusing to write phantoms into non-empty folder {out} that is not a phantom "
                        "dataset (no phantom.json); choose an empty folder or pass --overwrite")


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from rstn_core.data.phantom import write_phantom_dataset
    from rstn_core.errors import RstnError
    from rstn_core.folders import check_writable, staged_folder

    if args.n < 1:
        raise RstnError(f"--n must be >= 1, got {args.n}")
    if args.anatomy < 2 and args.fov == "abdomen-pelvis":
        raise RstnError("--fov abdomen-pelvis needs --anatomy 2 (version 1 has no pelvis)")
    fov = "abdomen" if args.anatomy < 2 else args.fov
    check_grid(args.shape, args.spacing, fov)
    out = Path(args.out)
    check_out(out, args.overwrite)
    check_writable(out)
    try:
        from tqdm import tqdm

        def progress(it):
            return tqdm(it, desc="phantoms", unit="case")
    except ImportError:  # tqdm is optional
        progress = None
    # built in a fresh folder beside --out, then moved in: a failed run leaves nothing, and
    # --overwrite replaces images/ and labels/ whole (no stale slices of an earlier grid)
    from rstn_core.data.phantom import MARKER

    old_dataset = ("preview",) if (out / MARKER).is_file() else ()
    with staged_folder(out, old_dataset) as staged:
        rows = write_phantom_dataset(staged, args.n, args.seed, fmt=args.format, spacing=tuple(args.spacing),
                                     shape=tuple(args.shape) if args.shape else None, overwrite=False,
                                     progress=progress, appearance=args.appearance,
                                     anatomy=args.anatomy, fov=fov)
        if args.preview:
            from rstn_core.data.phantom_preview import write_previews

            write_previews(staged, rows)
    logging.getLogger(__name__).info("wrote %d phantoms to %s", len(rows), args.out)
    return 0
