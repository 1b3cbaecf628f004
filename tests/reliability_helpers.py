"""Shared helpers of the hostile-input and fault tests (docs/reliability.md): tiny CTs, a tiny bundle,
and the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (21, 23, 19)
AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def write_ct(folder: Path, name: str = "ct", seed: int = 0, label: bool = False) -> Path:
    """A tiny CT (organ at 200 HU) as ``folder/<name>.nii.gz`` (+ ``<name>_label.nii.gz``, pancreas = 7)."""
    rng = np.random.default_rng(seed)
    hu = rng.uniform(-100, 100, size=SHAPE).astype(np.float32)
    organ = np.zeros(SHAPE, bool)
    organ[6:12, 8:16, 6:12] = True
    hu[organ] = 200.0
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.nii.gz"
    nib.save(nib.Nifti1Image(hu, AFFINE), path)
    if label:
        nib.save(nib.Nifti1Image(organ.astype(np.uint8) * 7, AFFINE), folder / f"{name}_label.nii.gz")
    return path


def write_tiny_bundle(path: Path, meta: dict | None = None, **model_changes) -> Path:
    from rstn_core.config import DataConfig, ModelConfig
    from rstn_core.models.bundle import ModelBundle, save_bundle
    from rstn_core.models.rstn import build_model
    from rstn_core.types import View

    config = ModelConfig.from_preset("tiny").replace(**model_changes)
    models = {View.AXIAL: build_model("rstn", config)}
    bundle = ModelBundle("rstn", config, DataConfig(target_labels=(7,)), models, meta or {"organ": "pancreas"})
    return save_bundle(bundle, path)


def rstn(*argv, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real ``rstn`` command line in a subprocess; returns the completed process (text output)."""
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "rstn_core.cli", *[str(a) for a in argv]], capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The error line of a refused command; asserts exit 2 and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files under ``folder`` (names of atomic-write temporaries)."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.is_file() and (".tmp" in p.name or p.name.startswith(".") and ".nii" in p.name
                                      and not p.name.endswith(".done.json")))
