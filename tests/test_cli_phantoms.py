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
