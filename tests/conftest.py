"""Shared fixtures: tiny NIfTI writers and the real TotalSegmentator example beside the checkout."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

REAL_EXAMPLE = Path(__file__).resolve().parents[1].parent / "shared/data/totalseg_example"


@pytest.fixture
def write_nifti(tmp_path: Path) -> Callable[..., Path]:
    """``write_nifti(name, array, affine=eye) -> Path``: save ``array`` under ``tmp_path``."""

    def _write(name: str, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(np.asarray(array), np.eye(4) if affine is None else np.asarray(affine)), path)
        return path

    return _write


@pytest.fixture
def real_example() -> Path:
    """../shared/data/totalseg_example (ct.nii.gz + labels.nii.gz); skipped when absent."""
    if not (REAL_EXAMPLE / "ct.nii.gz").is_file() or not (REAL_EXAMPLE / "labels.nii.gz").is_file():
        pytest.skip(f"real CT example not available at {REAL_EXAMPLE} (it lives beside the checkout in ../shared)")
    return REAL_EXAMPLE


def tree_hash(path: Path) -> str:
    """SHA-256 over every file (name + bytes) under ``path`` (or of the file itself)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for p in files:
        digest.update(str(p.relative_to(path.parent)).encode())
        digest.update(p.read_bytes())
    return digest.hexdigest()


@pytest.fixture
def hash_tree() -> Callable[[Path], str]:
    """``hash_tree(path) -> str``: content hash of a file or folder, to prove inputs are untouched."""
    return tree_hash
