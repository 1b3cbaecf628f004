"""``rstn phantoms`` end to end: a readable manifest dataset with RAS NIfTI, and overwrite refusal."""

import csv

import nibabel as nib
import numpy as np

from rstn_core.cli import main


def test_rstn_phantoms_writes_dataset_and_refuses_overwrite(tmp_path):
    out = tmp_path / "ph"
    assert main(["phantoms", "--out", str(out), "--n", "2", "--seed", "0"]) == 0
    with open(out / "manifest.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["case_id"] for r in rows] == ["phantom_000", "phantom_001"]
    for r in rows:
        img, lab = nib.load(out / r["image"]), nib.load(out / r["label"])
        assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        np.testing.assert_allclose(img.affine, lab.affine)
        assert img.shape == lab.shape
        assert (np.asarray(lab.dataobj) == 7).any()
    a0 = np.asarray(nib.load(out / rows[0]["image"]).dataobj)
    a1 = np.asarray(nib.load(out / rows[1]["image"]).dataobj)
    assert not np.array_equal(a0, a1)
    # existing dataset: refused without --overwrite (exit 2), accepted with it
    assert main(["phantoms", "--out", str(out), "--n", "1", "--seed", "0"]) == 2
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    assert main(["phantoms", "--out", str(tmp_path / "other"), "--n", "1"]) == 2


def test_rstn_phantoms_field_of_view_and_anatomy_are_recorded(tmp_path, capsys):
    out = tmp_path / "pelvis"
    argv = ["phantoms", "--out", str(out), "--n", "1", "--spacing", "8", "8", "8"]
    assert main([*argv, "--fov", "abdomen-pelvis"]) == 0
    import json

    record = json.loads((out / "phantom.json").read_text())
    assert record["anatomy_version"] == 2 and record["fov"] == "abdomen-pelvis"
    assert record["cases"][0]["fov"] == "abdomen-pelvis"
    assert nib.load(out / "labels" / "phantom_000.nii.gz").shape[2] == 50  # 400 mm at 8 mm
    assert main([*argv[:2], str(tmp_path / "v1"), *argv[3:], "--anatomy", "1", "--fov", "abdomen-pelvis"]) == 2
    assert "--fov abdomen-pelvis needs --anatomy 2" in capsys.readouterr().err
    assert not (tmp_path / "v1").exists()
