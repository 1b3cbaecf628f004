"""rstn_core.data.layouts: NIH, MSD, manifest (CSV/JSON), phantom/generic layouts and their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rstn_core import dicom, io
from rstn_core.data.layouts import discover_dataset
from rstn_core.errors import DataError


def touch_nifti(write_nifti, rel: str):
    return write_nifti(rel, np.zeros((3, 5, 7), np.int16))


def test_nih_nested_dicom_and_labels(tmp_path, write_nifti):
    root = tmp_path / "nih"
    for n in (3, 1, 12):
        nested = root / "Pancreas-CT" / f"PANCREAS_{n:04d}" / "11-24-2015-Pancreas-18957" / "Pancreas-99667"
        dicom.write_dicom_series(np.zeros((3, 5, 2)), np.eye(4), nested)
    for n in (1, 3):
        touch_nifti(write_nifti, f"nih/TCIA_pancreas_labels-02-05-2017/label{n:04d}.nii.gz")
    ds = discover_dataset(root)
    assert ds.layout == "nih" and ds.default_target_labels == (1,)
    assert ds.case_ids == ["PANCREAS_0001", "PANCREAS_0003", "PANCREAS_0012"]
    assert ds.get("PANCREAS_0003").label.name == "label0003.nii.gz"
    assert ds.get("PANCREAS_0012").label is None
    assert io.load_volume(ds.get("PANCREAS_0001").image).shape == (3, 5, 2)  # nested series is found


def test_msd_task07(tmp_path, write_nifti):
    for cid in ("pancreas_010", "pancreas_001"):
        touch_nifti(write_nifti, f"Task07_Pancreas/imagesTr/{cid}.nii.gz")
        touch_nifti(write_nifti, f"Task07_Pancreas/labelsTr/{cid}.nii.gz")
    (tmp_path / "Task07_Pancreas/imagesTr/._pancreas_001.nii.gz").write_bytes(b"macOS junk")
    (tmp_path / "Task07_Pancreas/dataset.json").write_text(json.dumps({"name": "Pancreas"}))
    ds = discover_dataset(tmp_path / "Task07_Pancreas")
    assert (ds.layout, ds.name, ds.default_target_labels) == ("msd", "Pancreas", (1, 2))
    assert ds.case_ids == ["pancreas_001", "pancreas_010"]
    assert all(c.label is not None for c in ds.cases)


def test_manifest_csv_with_phantom_layout_and_sidecar(tmp_path, write_nifti):
    root = tmp_path / "phantom"
    for cid in ("case_002", "case_001"):
        touch_nifti(write_nifti, f"phantom/images/{cid}.nii.gz")
        touch_nifti(write_nifti, f"phantom/labels/{cid}.nii.gz")
    (root / "manifest.csv").write_text("case_id,image,label\n"
                                       "case_002,images/case_002.nii.gz,labels/case_002.nii.gz\n"
                                       "case_001,images/case_001.nii.gz,\n")
    ds = discover_dataset(root)
    assert ds.layout == "manifest" and ds.default_target_labels == (1,)
    assert ds.case_ids == ["case_001", "case_002"]
    assert ds.get("case_001").label is None
    assert ds.get("case_002").image == root / "images/case_002.nii.gz"
    (root / "dataset.json").write_text(json.dumps({"name": "phantoms", "target_labels": [7]}))
    ds = discover_dataset(root)
    assert (ds.name, ds.default_target_labels) == ("phantoms", (7,))


def test_manifest_json_list_and_object(tmp_path, write_nifti):
    touch_nifti(write_nifti, "m/data/a.nii.gz")
    rows = [{"case_id": "a", "image": "data/a.nii.gz", "label": None}]
    (tmp_path / "m/manifest.json").write_text(json.dumps(rows))
    assert discover_dataset(tmp_path / "m").case_ids == ["a"]
    (tmp_path / "m/manifest.json").write_text(json.dumps({"name": "x", "target_labels": [1, 2], "cases": rows}))
    assert discover_dataset(tmp_path / "m").default_target_labels == (1, 2)


def test_generic_images_labels_without_manifest(tmp_path, write_nifti):
    touch_nifti(write_nifti, "g/images/b.nii")
    touch_nifti(write_nifti, "g/images/a.nii.gz")
    touch_nifti(write_nifti, "g/labels/a.nii.gz")
    ds = discover_dataset(tmp_path / "g")
    assert ds.layout == "generic" and ds.case_ids == ["a", "b"]
    assert ds.get("a").label is not None and ds.get("b").label is None


def test_manifest_pointing_at_missing_files(tmp_path, write_nifti):
    touch_nifti(write_nifti, "m/a.nii.gz")
    (tmp_path / "m/manifest.csv").write_text("case_id,image,label\na,a.nii.gz,missing_label.nii.gz\n")
    with pytest.raises(DataError, match=r"missing file.*a: .*missing_label\.nii\.gz"):
        discover_dataset(tmp_path / "m")


def test_duplicated_case_ids(tmp_path, write_nifti):
    touch_nifti(write_nifti, "m/a.nii.gz")
    (tmp_path / "m/manifest.csv").write_text("case_id,image,label\na,a.nii.gz,\na,a.nii.gz,\n")
    with pytest.raises(DataError, match=r"duplicated case ids \['a'\]"):
        discover_dataset(tmp_path / "m")


def test_folder_without_ct(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/readme.txt").write_text("nothing here")
    with pytest.raises(DataError, match="empty: no CT dataset found"):
        discover_dataset(tmp_path / "empty")
    (tmp_path / "msd/imagesTr").mkdir(parents=True)
    with pytest.raises(DataError, match="no CT cases"):
        discover_dataset(tmp_path / "msd")
    with pytest.raises(DataError, match="does not exist"):
        discover_dataset(tmp_path / "nowhere")
