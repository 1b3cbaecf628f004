"""rstn_core.dicom: rescale applied, order by position (not InstanceNumber), broken series refused."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pydicom
import pytest

from rstn_core import dicom, dicom_write, io
from rstn_core.errors import DataError

SHAPE = (9, 10, 11)


def ras_affine(spacing=(0.7, 0.8, 2.5), origin=(-30.0, 12.0, 40.0)) -> np.ndarray:
    a = np.diag([*spacing, 1.0])
    a[:3, 3] = origin
    return a


def hu_volume(shape=SHAPE) -> np.ndarray:
    """Integer HU, every slice distinct so a wrong order is visible."""
    rng = np.random.default_rng(3)
    hu = rng.integers(-1000, 1500, size=shape).astype(np.float32)
    hu[0, 0, :] = np.arange(shape[2]) * 10  # slice signature
    return hu


@pytest.fixture
def series(tmp_path):
    hu, affine = hu_volume(), ras_affine()
    paths = dicom_write.write_dicom_series(hu, affine, tmp_path / "series", intercept=-1024, slope=1,
                                     rng=np.random.default_rng(7))
    return hu, affine, paths


def test_written_series_is_valid_ct_with_rescale(series):
    _, _, paths = series
    ds = pydicom.dcmread(paths[0])
    assert ds.SOPClassUID == dicom.CT_IMAGE_STORAGE
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert float(ds.RescaleIntercept) == -1024 and float(ds.RescaleSlope) == 1
    assert ds.pixel_array.min() >= 0  # stored values are shifted: HU only after the rescale


def test_shuffled_series_loads_to_right_hu_in_right_order(series):
    hu, affine, paths = series
    numbers = [int(pydicom.dcmread(p, stop_before_pixels=True).InstanceNumber) for p in paths]
    assert numbers != sorted(numbers)  # file names and InstanceNumbers do not follow position
    volume = io.load_volume(paths[0].parent)
    np.testing.assert_array_equal(volume.data, hu)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")


def test_raw_series_is_lps_converted_to_ras(series):
    hu, affine, paths = series
    data, raw_affine = dicom.read_dicom_series(paths[0].parent)
    np.testing.assert_array_equal(data, hu)
    np.testing.assert_allclose(raw_affine, affine, atol=1e-5)


def test_slope_and_negative_stored_values(tmp_path):
    hu = hu_volume((5, 7, 3))
    hu -= hu % 2  # representable with slope 2
    paths = dicom_write.write_dicom_series(hu, ras_affine(), tmp_path / "s", intercept=0, slope=2)
    assert pydicom.dcmread(paths[0]).PixelRepresentation == 1
    np.testing.assert_array_equal(io.load_volume(tmp_path / "s").data, hu)


def test_flipped_input_orientation_round_trips(tmp_path):
    hu = hu_volume()
    lps = np.diag([-0.7, -0.8, 2.5, 1.0])  # world R decreasing along i, A decreasing along j
    lps[:3, 3] = [5.0, 6.0, 7.0]
    dicom_write.write_dicom_series(hu, lps, tmp_path / "s")
    volume = io.load_volume(tmp_path / "s")
    np.testing.assert_array_equal(io.to_input_frame(volume.data, volume.orientation), hu)
    np.testing.assert_allclose(volume.orientation.original_affine, lps, atol=1e-5)


def test_missing_slice_is_refused_naming_the_files(series):
    _, _, paths = series
    paths[5].unlink()
    with pytest.raises(DataError, match=rf"gap.*{paths[4].name}.*{paths[6].name}"):
        io.load_volume(paths[0].parent)


def test_duplicated_position_is_refused_naming_the_files(series, tmp_path):
    _, _, paths = series
    ds = pydicom.dcmread(paths[4])
    ds.ImagePositionPatient = pydicom.dcmread(paths[3]).ImagePositionPatient
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    dup = paths[0].parent / "zz_duplicate.dcm"
    ds.save_as(dup)
    paths[4].unlink()
    with pytest.raises(DataError, match=r"duplicated.*(zz_duplicate\.dcm|" + paths[3].name + ")"):
        io.load_volume(paths[0].parent)


def test_uneven_spacing_is_refused(series):
    _, _, paths = series
    ds = pydicom.dcmread(paths[5])
    pos = [float(v) for v in ds.ImagePositionPatient]
    ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + 0.6]
    ds.save_as(paths[5])
    with pytest.raises(DataError, match=rf"not evenly spaced.*{paths[5].name}"):
        io.load_volume(paths[0].parent)


def test_mixed_sizes_are_refused(series, tmp_path):
    _, _, paths = series
    small = dicom_write.write_dicom_series(hu_volume((9, 8, 2)), ras_affine(origin=(-30, 12, 200)), tmp_path / "other")
    ds = pydicom.dcmread(small[0])
    ds.SeriesInstanceUID = pydicom.dcmread(paths[0]).SeriesInstanceUID
    ds.save_as(paths[0].parent / "odd_size.dcm")
    with pytest.raises(DataError, match=r"mixes slice sizes.*8x9: odd_size\.dcm"):
        io.load_volume(paths[0].parent)


def test_several_series_pick_the_largest_or_refuse_a_tie(tmp_path):
    root = tmp_path / "study"
    big = hu_volume((5, 6, 7))
    dicom_write.write_dicom_series(big, ras_affine(), root / "a", series_uid="1.2.3.1")
    dicom_write.write_dicom_series(hu_volume((5, 6, 3)), ras_affine(), root / "b", series_uid="1.2.3.2")
    np.testing.assert_array_equal(io.load_volume(root).data, big)
    data, _ = dicom.read_dicom_series(root, series_uid="1.2.3.2")
    assert data.shape == (5, 6, 3)
    assert sorted(dicom.list_series(root)) == ["1.2.3.1", "1.2.3.2"]
    dicom_write.write_dicom_series(hu_volume((5, 6, 7)), ras_affine(), root / "c", series_uid="1.2.3.3")
    with pytest.raises(DataError, match=r"several CT series.*1\.2\.3\.1.*7 slices"):
        io.load_volume(root)


def test_single_slice_series_is_refused(tmp_path):
    dicom_write.write_dicom_series(hu_volume((5, 6, 1)), ras_affine(), tmp_path / "one")
    with pytest.raises(DataError, match="single slice"):
        io.load_volume(tmp_path / "one")


def test_reading_never_modifies_the_series(series, hash_tree):
    _, _, paths = series
    before = hash_tree(paths[0].parent)
    io.load_volume(paths[0].parent)
    assert hash_tree(paths[0].parent) == before
