"""Library figures draw on their own Agg canvas: no matplotlib.use() (a global backend switch) on the way."""

import json

import matplotlib
import nibabel as nib
import numpy as np
import pytest

from rstn_core.data.phantom_preview import write_previews
from rstn_core.training.metrics_log import plot_curves


@pytest.fixture
def no_backend_switch(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"matplotlib.use{args} called from the library")

    monkeypatch.setattr(matplotlib, "use", refuse)


def test_training_curves_png_without_a_backend_switch(tmp_path, no_backend_switch):
    records = [{"step": s, "stage": "S" if s < 4 else "I", "loss": 1 / s, "loss_0": 0.5, "loss_1": 0.4}
               for s in range(1, 7)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    png = plot_curves(tmp_path / "metrics.jsonl", tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_phantom_previews_without_a_backend_switch(tmp_path, no_backend_switch):
    labels = np.zeros((9, 10, 11), np.uint8)
    labels[3:6, 4:7, 4:8] = 7
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "lab.nii.gz")
    nib.save(nib.Nifti1Image(labels.astype(np.float32) * 40, np.eye(4)), tmp_path / "ct.nii.gz")
    (path,) = write_previews(tmp_path, [{"case_id": "p0", "image": "ct.nii.gz", "label": "lab.nii.gz"}])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
