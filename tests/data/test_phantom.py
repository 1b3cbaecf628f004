"""Synthetic phantom generator: determinism, pancreas size/placement, HU plausibility, label ids."""

import json

import nibabel as nib
import numpy as np
import pytest

from rstn_core.data.phantom import PHANTOM_LABELS, generate_phantom, write_phantom_dataset
from rstn_core.errors import DataError

SEEDS = (0, 1, 2)
HU_SEEDS = tuple(range(8))


@pytest.fixture(scope="module")
def phantoms():
    return {s: generate_phantom(s) for s in SEEDS}


def test_same_seed_same_arrays_and_different_seeds_differ(phantoms):
    again = generate_phantom(0)
    np.testing.assert_array_equal(again.hu, phantoms[0].hu)
    np.testing.assert_array_equal(again.labels, phantoms[0].labels)
    assert not np.array_equal(phantoms[0].labels, phantoms[1].labels)
    assert phantoms[0].meta["anatomy"]["body_a"] != phantoms[1].meta["anatomy"]["body_a"]


@pytest.mark.parametrize("seed", SEEDS)
def test_pancreas_small_and_fully_inside(phantoms, seed):
    ph = phantoms[seed]
    m = ph.labels == 7
    assert 300 <= m.sum() <= 2000
    per_slice = m.sum(axis=(0, 1)) / (m.shape[0] * m.shape[1])
    assert per_slice.max() < 0.015
    xs, ys, zs = (np.nonzero(m.any(axis=a))[0] for a in ((1, 2), (0, 2), (0, 1)))
    for idx, n in ((xs, m.shape[0]), (ys, m.shape[1]), (zs, m.shape[2])):
        assert idx.min() >= 2 and idx.max() <= n - 3


@pytest.mark.parametrize("seed", HU_SEEDS)
def test_hu_plausible_per_organ(phantoms, seed):
    ph = phantoms[seed] if seed in phantoms else generate_phantom(seed)
    med = {i: float(np.median(ph.hu[ph.labels == i])) for i in (5, 7, 52, 1)}
    assert 65 <= med[7] <= 130  # portal-venous gland, thin parts partial-volumed with fat
    assert 80 <= med[5] <= 140
    assert 120 <= med[52] <= 260
    assert 90 <= med[1] <= 150
    assert np.median(ph.hu[ph.labels == 31]) > 150  # L1 vertebra
    assert ph.hu.dtype == np.int16 and ph.hu.min() >= -1024
    assert ph.hu[0, 0, :].max() < -900  # air in the corner


def test_fat_is_fat(phantoms):
    ph = phantoms[0]
    fat = (ph.labels == 0) & (ph.hu < 0) & (ph.hu > -300)
    assert np.median(ph.hu[fat]) < -50


def test_liver_right_spleen_left_in_ras(phantoms):
    ph = phantoms[0]
    x_liver = np.nonzero(ph.labels == 5)[0].mean()
    x_spleen = np.nonzero(ph.labels == 1)[0].mean()
    assert x_liver > x_spleen  # RAS: index 0 grows towards the patient's right
    assert nib.aff2axcodes(ph.affine) == ("R", "A", "S")


def test_label_ids_are_documented(phantoms):
    for ph in phantoms.values():
        present = set(np.unique(ph.labels).tolist()) - {0}
        assert present <= set(PHANTOM_LABELS)
        assert {1, 2, 3, 5, 6, 7, 19, 52, 63, 64, 31} <= present


def test_spacing_changes_geometry():
    ph = generate_phantom(0, spacing=(4.0, 4.0, 4.0))
    assert ph.hu.shape == (96, 84, 60)
    np.testing.assert_allclose(np.diag(ph.affine)[:3], 4.0)
    assert (ph.labels == 7).any()


def test_too_small_grid_refused():
    with pytest.raises(DataError, match="pancreas"):
        generate_phantom(0, shape=(128, 112, 16))


def test_writer_refuses_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="non-empty"):
        write_phantom_dataset(tmp_path, 1, 0)


def test_writer_layout(tmp_path):
    rows = write_phantom_dataset(tmp_path / "ds", 1, 5, spacing=(4.0, 4.0, 4.0))
    assert rows[0]["case_id"] == "phantom_000"
    names = json.loads((tmp_path / "ds" / "labels.json").read_text())
    assert names["7"] == "pancreas"


def test_writer_declares_pancreas_target_for_discover_dataset(tmp_path):
    from rstn_core.data.layouts import discover_dataset

    write_phantom_dataset(tmp_path / "ds", 2, 3, spacing=(4.0, 4.0, 4.0))
    info = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert info["name"] == "rstn-phantoms" and info["target_labels"] == [7]
    ds = discover_dataset(tmp_path / "ds")
    assert ds.layout == "manifest" and ds.name == "rstn-phantoms"
    assert ds.default_target_labels == (7,)
    assert ds.case_ids == ["phantom_000", "phantom_001"]


def test_dicom_format_matches_nifti(tmp_path):
    from rstn_core.data.layouts import discover_dataset
    from rstn_core.io import load_volume

    shape, spacing = (64, 56, 40), (6.0, 6.0, 6.0)
    write_phantom_dataset(tmp_path / "nii", 1, 11, fmt="nifti", shape=shape, spacing=spacing)
    write_phantom_dataset(tmp_path / "dcm", 1, 11, fmt="dicom", shape=shape, spacing=spacing)
    ds = discover_dataset(tmp_path / "dcm")
    assert ds.default_target_labels == (7,) and ds.case_ids == ["phantom_000"]
    case = ds.get("phantom_000")
    assert case.image.is_dir() and any(case.image.iterdir())
    dcm = load_volume(case.image)
    nii = load_volume(discover_dataset(tmp_path / "nii").get("phantom_000").image)
    assert dcm.data.shape == nii.data.shape == shape
    np.testing.assert_array_equal(np.rint(dcm.data).astype(np.int16), nii.data.astype(np.int16))
    np.testing.assert_allclose(dcm.affine, nii.affine, atol=1e-4)
    lab = nib.load(case.label)
    np.testing.assert_allclose(lab.affine, dcm.affine, atol=1e-4)
