"""Hostile inputs never exhaust the machine, folders are read as a user means them, leakage is caught
(issue 15, items 3, 5, 6, 7, 9, 11; docs/reliability.md)."""

from __future__ import annotations

import gzip
import json
import pickle
import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from reliability_helpers import AFFINE, SHAPE, one_line_error, rstn, write_ct, write_tiny_bundle  # noqa: E402

from rstn_core import dicom, io  # noqa: E402
from rstn_core.commands.predict import find_cases  # noqa: E402
from rstn_core.errors import CheckpointError, DataError  # noqa: E402
from rstn_core.models.bundle import load_bundle  # noqa: E402

TINY_PHANTOMS = ["--spacing", "12", "12", "12", "--fov", "abdomen"]  # a 32 x 28 x 20 grid


# ---------------------------------------------------------------- item 3: train/test leakage
def manifest_dataset(root: Path, ids: list[str]) -> Path:
    rows = ["case_id,image,label"]
    for i, cid in enumerate(ids):
        write_ct(root / "cases", cid, seed=i, label=True)
        rows.append(f"{cid},cases/{cid}.nii.gz,cases/{cid}_label.nii.gz")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    (root / "dataset.json").write_text(json.dumps({"name": "toy", "target_labels": [7]}))
    return root


@pytest.fixture(scope="module")
def leaky(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("leak")
    data = manifest_dataset(root / "data", ["a", "b", "c", "d"])
    models = root / "models"
    models.mkdir()
    (models / "split.json").write_text(json.dumps({"folds": [["a", "b"], ["c", "d"]]}))
    for fold, trained in enumerate((["a", "c", "d"], ["a", "b"])):  # fold 0 saw its test case a
        write_tiny_bundle(models / f"fold{fold}.rstn", {"organ": "pancreas", "training": {
            "dataset": "toy", "train_cases": trained}})
    return data, models


def test_evaluate_refuses_a_bundle_trained_on_its_test_case(leaky, tmp_path):
    data, models = leaky
    line = one_line_error(rstn("evaluate", "--data", data, "--models", models, "--methods", "rstn",
                               "--out", tmp_path / "res", "--device", "cpu"))
    assert "leakage" in line and "fold 0" in line and "['a']" in line and "fold 1" not in line
    assert not (tmp_path / "res").exists()


def test_evaluate_can_exclude_leaked_cases_loudly(leaky, tmp_path):
    data, models = leaky
    proc = rstn("evaluate", "--data", data, "--models", models, "--methods", "rstn", "--out", tmp_path / "res",
                "--device", "cpu", "--max-rounds", "1", "--exclude-leaked")
    assert proc.returncode == 0, proc.stderr
    assert "LEAKAGE" in proc.stderr
    cases = {r["case_id"] for r in json.loads((tmp_path / "res" / "results.json").read_text())["cases"]}
    assert cases == {"b", "c", "d"}


# ---------------------------------------------------------------- item 5: folder detection
def write_series(folder: Path, hu=None, affine=AFFINE, **kwargs) -> list[Path]:
    hu = np.random.default_rng(0).integers(-100, 100, size=SHAPE).astype(np.float32) if hu is None else hu
    return dicom.write_dicom_series(hu, affine, folder, **kwargs)


def test_tcia_nesting_is_one_case_named_after_the_patient(tmp_path):
    write_series(tmp_path / "PANCREAS_0001" / "1.2.826.0.1.3680043.2.1125.1" / "1.2.826.0.1.3680043.2.1125.2")
    assert find_cases(tmp_path / "PANCREAS_0001") == ([("PANCREAS_0001", tmp_path / "PANCREAS_0001")], False)


def test_nih_form_with_label_runs(tmp_path):
    hu = np.random.default_rng(0).integers(-100, 100, size=SHAPE).astype(np.float32)
    hu[6:12, 8:16, 6:12] = 200
    write_series(tmp_path / "PANCREAS_0001" / "study" / "series", hu)
    label = np.zeros(SHAPE, np.uint8)
    label[6:12, 8:16, 6:12] = 7  # the tiny bundle's target id
    nib.save(nib.Nifti1Image(label, AFFINE), tmp_path / "label0001.nii.gz")
    bundle = write_tiny_bundle(tmp_path / "b.rstn")
    proc = rstn("predict", "-i", tmp_path / "PANCREAS_0001", "-o", tmp_path / "out", "--label",
                tmp_path / "label0001.nii.gz", "--model", bundle, "--max-rounds", "1", "--no-progress",
                "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert "DSC" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if not p.name.startswith(".")) == \
        ["PANCREAS_0001.nii.gz"]


def test_a_phantom_dataset_is_a_batch_of_its_images(tmp_path):
    assert rstn("phantoms", "--out", tmp_path / "ph", "--n", "2", "--format", "dicom", *TINY_PHANTOMS).returncode == 0
    cases, batch = find_cases(tmp_path / "ph")
    assert batch and [c for c, _ in cases] == ["phantom_000", "phantom_001"]
    assert cases[0][1] == tmp_path / "ph" / "images" / "phantom_000"


# ---------------------------------------------------------------- item 6: DICOM series without UIDs, gantry tilt
def blank_uids(paths: list[Path]) -> None:
    for p in paths:
        ds = pydicom.dcmread(p)
        ds.SeriesInstanceUID = ""
        ds.save_as(p)


def test_two_series_without_uid_are_split_not_interleaved(tmp_path, caplog):
    hu = np.random.default_rng(1).integers(-100, 100, size=(9, 10, 6)).astype(np.float32)
    a = write_series(tmp_path / "s", hu, np.diag([0.8, 0.8, 2.0, 1.0]), intercept=-1024)
    shifted = np.diag([0.8, 0.8, 2.0, 1.0])
    shifted[2, 3] = 1.0  # positions between those of the first series
    b = dicom.write_dicom_series(hu[:, :, :5] + 1024, shifted, tmp_path / "other", intercept=0)
    for p in b:
        p.rename(tmp_path / "s" / f"b_{p.name}")
    blank_uids(a + list((tmp_path / "s").glob("b_*")))
    with caplog.at_level("WARNING"):
        data, _ = dicom.read_dicom_series(tmp_path / "s")
    np.testing.assert_array_equal(data, hu)  # the larger series, whole and alone
    text = caplog.text
    assert "no SeriesInstanceUID" in text and "using the largest, (no SeriesInstanceUID" in text
    assert "largest,  (" not in text


def test_gantry_tilted_series_is_refused(tmp_path):
    paths = write_series(tmp_path / "tilt")
    for p in paths:
        ds = pydicom.dcmread(p)
        x, y, z = (float(v) for v in ds.ImagePositionPatient)
        ds.ImagePositionPatient = [f"{x:.4f}", f"{y + 0.5 * z:.4f}", f"{z:.4f}"]  # ~26.6 degrees
        ds.GantryDetectorTilt = "26.6"
        ds.save_as(p)
    with pytest.raises(DataError, match=r"gantry tilt"):
        io.load_volume(tmp_path / "tilt")


# ---------------------------------------------------------------- item 7: sizes checked before allocating
def forged_nifti(path: Path, shape) -> Path:
    header = nib.Nifti1Header()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header.set_qform(np.eye(4), 1)
    raw = header.binaryblock + b"\0" * 4  # header + extension flag, no voxel data
    path.write_bytes(gzip.compress(raw))
    return path


@pytest.mark.parametrize("shape, message", [((800, 800, 800), "cannot hold them"),
                                            ((2000, 2000, 2000), "exceeds the limit"),
                                            ((30000, 30000, 30000), "exceeds the limit")])
def test_forged_nifti_is_refused_before_allocating(tmp_path, shape, message):
    path = forged_nifti(tmp_path / "forged.nii.gz", shape)
    assert path.stat().st_size < 200
    tracemalloc.start()
    with pytest.raises(DataError, match=message):
        io.load_volume(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 * 2**20


def test_dicom_grid_above_the_limit_is_refused(tmp_path, monkeypatch):
    write_series(tmp_path / "s")
    monkeypatch.setenv("RSTN_MAX_VOXELS", "1000")
    with pytest.raises(DataError, match="RSTN_MAX_VOXELS"):
        io.load_volume(tmp_path / "s")


@pytest.mark.parametrize("grid", [["--shape", "4000", "4000", "4000"], ["--spacing", "0.1", "0.1", "0.1"]])
def test_huge_phantom_grids_are_refused(tmp_path, grid):
    line = one_line_error(rstn("phantoms", "--out", tmp_path / "ph", "--n", "1", *grid))
    assert "exceeds the limit" in line and not (tmp_path / "ph").exists()


def test_bundle_configs_outside_sane_ranges_are_refused(tmp_path):
    path = write_tiny_bundle(tmp_path / "up.rstn", input_upsample=200)
    with pytest.raises(CheckpointError, match="input_upsample = 200"):
        load_bundle(path)


# ---------------------------------------------------------------- item 9: phantoms and argument checks
def test_phantoms_overwrite_on_a_new_grid_leaves_no_stale_slices(tmp_path):
    out = tmp_path / "ph"
    first = rstn("phantoms", "--out", out, "--n", "1", "--format", "dicom", "--spacing", "10", "10", "10",
                 "--fov", "abdomen")
    assert first.returncode == 0, first.stderr
    assert len(list((out / "images" / "phantom_000").iterdir())) == 24
    assert rstn("phantoms", "--out", out, "--n", "1", "--format", "dicom", *TINY_PHANTOMS,
                "--overwrite").returncode == 0
    assert len(list((out / "images" / "phantom_000").iterdir())) == 20
    assert io.load_volume(out / "images" / "phantom_000").shape == (32, 28, 20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ph"]  # no staging folder left


def test_a_killed_phantom_run_does_not_block_the_next(tmp_path):
    out = tmp_path / "ph"
    (out / ".rstn-new-abc123" / "images").mkdir(parents=True)  # what `kill -9` leaves
    assert rstn("phantoms", "--out", out, "--n", "1", *TINY_PHANTOMS).returncode == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


def test_a_failed_phantom_run_leaves_no_folder(tmp_path):
    line = one_line_error(rstn("phantoms", "--out", tmp_path / "ph", "--n", "1", "--shape", "16", "16", "16"))
    assert "pancreas" in line and list(tmp_path.iterdir()) == []


def test_demo_train_refuses_too_few_phantoms_before_writing(tmp_path):
    line = one_line_error(rstn("demo-train", "--work", tmp_path / "work", "--out", tmp_path / "out", "--n", "1"))
    assert "--n must be at least 4" in line and list(tmp_path.iterdir()) == []


def test_train_with_one_fold_says_why(tmp_path):
    line = one_line_error(rstn("train", "--data", tmp_path, "--out", tmp_path / "run", "--folds", "1"))
    assert "--folds must be at least 2" in line


# ---------------------------------------------------------------- item 11: no invitation to unsafe loading
class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("kind", ["code", "random"])
def test_refused_bundle_does_not_suggest_unsafe_loading(tmp_path, kind):
    path = tmp_path / "hostile.rstn"
    if kind == "code":
        torch.save({"format": "rstn-bundle", "x": _Evil()}, path, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    else:
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(CheckpointError) as info:
        load_bundle(path)
    text = str(info.value)
    assert "hostile.rstn" in text
    for hint in ("weights_only", "Re-running", "safe_globals", "will likely succeed"):
        assert hint not in text
