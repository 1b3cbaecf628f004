"""End-to-end `rstn predict` on a clinical-size CT: load, resample to the model grid, all rounds, back, write.

A 512 x 512 x 300 volume at 0.8 x 0.8 x 1.0 mm is made from a phantom (or ``--ct FILE``) by linear
resampling at its own physical scale, written as int16 NIfTI into a temporary folder (not timed), then
``rstn predict`` runs in a child process with the built-in model (or ``--model``). Reported: wall seconds
of the child, its peak resident memory (``ru_maxrss`` of the children), and the summary line it printed.

    .venv/bin/python benchmarks/predict_speed.py --repeat 2
    .venv/bin/python benchmarks/predict_speed.py --repeat 2 --workers 1,0   # one call at a time vs auto, interleaved
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

SHAPE = (512, 512, 300)
SPACING = (0.8, 0.8, 1.0)


def make_ct(path: Path, source: Path | None) -> None:
    """Write a SHAPE int16 CT at SPACING mm to ``path``: the phantom (or ``source``) resampled physically (same
    mm scale, centred, air outside its field of view), so the anatomy keeps its size."""
    if source is None:
        from rstn_core.data.phantom import DEMO_ANATOMY, generate_phantom

        phantom = generate_phantom(0, anatomy=DEMO_ANATOMY)  # portal venous, 3 mm: the demo model finds it
        hu, spacing = phantom.hu.astype(np.float32), (3.0, 3.0, 3.0)
    else:
        img = nib.as_closest_canonical(nib.load(source))
        hu, spacing = np.asarray(img.dataobj, dtype=np.float32), img.header.get_zooms()[:3]
    scale = np.asarray(SPACING) / np.asarray(spacing, dtype=np.float64)
    offset = (np.asarray(hu.shape) - 1) / 2 - scale * (np.asarray(SHAPE) - 1) / 2
    big = ndimage.affine_transform(hu, scale, offset=offset, output_shape=SHAPE, order=1, cval=-1000.0,
                                   output=np.float32)
    nib.save(nib.Nifti1Image(np.rint(big).astype(np.int16), np.diag([*SPACING, 1.0])), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ct", type=Path, help="CT to up-sample instead of a phantom")
    parser.add_argument("--model", type=Path, help="bundle (default: the built-in demo model)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--workers", default="0",
                        help="comma-separated `rstn predict --workers` values, each run per repeat (0 = auto)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        ct = Path(tmp) / "ct.nii.gz"
        make_ct(ct, args.ct)
        print(f"input {SHAPE} at {SPACING} mm, {ct.stat().st_size / 1e6:.0f} MB on disk; {args.threads} threads")
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        runs = [(i, w) for i in range(args.repeat) for w in args.workers.split(",")]
        for i, workers in runs:
            out = Path(tmp) / f"mask{i}_w{workers}.nii.gz"
            cmd = [sys.executable, "-m", "rstn_core.cli", "predict", "-i", str(ct), "-o", str(out), "--no-progress",
                   "--workers", workers]
            if args.model:
                cmd += ["--model", str(args.model)]
            t0 = time.perf_counter()
            done = subprocess.run(cmd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - t0
            if done.returncode != 0:
                print(done.stderr)
                return done.returncode
            peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(f"run {i}, --workers {workers}: {seconds:.1f} s wall, peak RSS {peak_mb:.0f} MB (max so far)")
            print("   ", done.stdout.strip().splitlines()[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
