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
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    parser.add_argument("--preview", action="store_true", help="also write axial/coronal PNGs to OUT/preview/")


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from rstn_core.data.phantom import write_phantom_dataset
    from rstn_core.errors import RstnError

    if args.n < 1:
        raise RstnError(f"--n must be >= 1, got {args.n}")
    try:
        from tqdm import tqdm

        def progress(it):
            return tqdm(it, desc="phantoms", unit="case")
    except ImportError:  # tqdm is optional
        progress = None
    rows = write_phantom_dataset(args.out, args.n, args.seed, fmt=args.format, spacing=tuple(args.spacing),
                                 shape=tuple(args.shape) if args.shape else None, overwrite=args.overwrite,
                                 progress=progress, appearance=args.appearance)
    if args.preview:
        from rstn_core.data.phantom_preview import write_previews

        write_previews(Path(args.out), rows)
    logging.getLogger(__name__).info("wrote %d phantoms to %s", len(rows), args.out)
    return 0
