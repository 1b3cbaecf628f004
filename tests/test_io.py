"""rstn_core.io: canonicalisation round trips, masks on the input grid, clear errors, untouched inputs."""

from __future__ import annotations

import itertools

import nibabel as nib
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstn_core import io
from rstn_core.errors import DataError

SHAPE = (9, 10, 11)


def oriented_affine(perm, signs, spacing=(0.7, 0.8, 2.5), origin=(10.0, -20.0, 30.0)) -> np.ndarray:
    """Voxel axis i runs along world axis perm[i] with direction signs[i]."""
    a = np.zeros((4, 4))
    for i, (w, s) in enumerate(zip(perm, signs)):
        a[w, i] = s * spacing[i]
    a[:3, 3] = origin
    a[3, 3] = 1
    return a


LPS = oriented_affine((0, 1, 2), (-1, -1, 1))
LAS = oriented_affine((0, 1, 2), (-1, 1, 1))


def ramp(shape=SHAPE) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.int16).reshape(shape) - 400


@settings(max_examples=25, deadline=None)
@given(
    perm=st.permutations([0, 1, 2]),
    signs=st.tuples(*[st.sampled_from([-1, 1])] * 3),
    shape=st.tuples(*[st.integers(1, 7).map(lambda n: 2 * n + 1)] * 3),
)
def test_canonicalise_then_undo_returns_the_input(perm, signs, shape):
    data = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    affine = oriented_affine(perm, signs)
    canonical, canonical_affine, record = io.canonicalise(data, affine)
    assert nib.aff2axcodes(canonical_affine) == ("R", "A", "S")
    np.testing.assert_array_equal(io.to_input_frame(canonical, record), data)
    # the same world point for every voxel: canonical affine @ canonical index == affine @ input index
    i, j, k = (s // 2 for s in shape)
    world = affine @ [i, j, k, 1]
    idx = np.argwhere(canonical == data[i, j, k])[0]
    np.testing.assert_allclose(canonical_affine @ [*idx, 1], world, atol=1e-6)


@pytest.mark.parametrize("name,affine", [("lps", LPS), ("las", LAS), ("ras", oriented_affine((0, 1, 2), (1, 1, 1))),
                                         ("permuted", oriented_affine((2, 0, 1), (1, -1, 1)))])
def test_mask_saved_overlays_the_input(tmp_path, write_nifti, name, affine):
    data = ramp()
    image_path = write_nifti(f"{name}.nii.gz", data, affine)
    volume = io.load_volume(image_path)
    assert nib.aff2axcodes(volume.affine) == ("R", "A", "S")
    mask = volume.data > 100  # computed in the canonical frame
    out = io.save_mask(mask, volume, tmp_path / f"{name}_mask.nii.gz")
    saved = nib.load(out)
    np.testing.assert_allclose(saved.affine, affine, atol=1e-6)
    assert saved.shape == data.shape
    assert saved.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(saved.dataobj), (data > 100).astype(np.uint8))


def test_save_mask_refuses_existing_path_unless_overwrite(tmp_path, write_nifti):
    volume = io.load_volume(write_nifti("img.nii.gz", ramp(), LPS))
    target = tmp_path / "mask.nii.gz"
    io.save_mask(np.zeros(SHAPE, bool), volume, target)
    with pytest.raises(DataError, match="already exists"):
        io.save_mask(np.ones(SHAPE, bool), volume, target)
    io.save_mask(np.ones(SHAPE, bool), volume, target, overwrite=True)
    assert np.asarray(nib.load(target).dataobj).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz", "mask.nii.gz"]  # no temp files left


def test_save_probability_keeps_values(tmp_path, write_nifti):
    volume = io.load_volume(write_nifti("img.nii", ramp(), LAS))
    prob = np.random.default_rng(1).random(SHAPE).astype(np.float32)
    out = io.save_probability(prob, volume, tmp_path / "prob.nii.gz")
    back = io.load_volume(out)
    np.testing.assert_array_equal(back.data, prob)


def test_load_case_target_and_label_map(write_nifti):
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:4, 3:5, 4:6] = 7
    labels[5, 5, 5] = 1
    case = io.load_case(write_nifti("ct.nii.gz", ramp(), LPS), write_nifti("lab.nii.gz", labels, LPS),
                        target_labels=(7,))
    assert case.case_id == "ct"
    assert case.label.dtype == bool and int(case.label.sum()) == 8
    assert set(np.unique(case.label_map)) == {0, 1, 7}
    np.testing.assert_array_equal(io.to_input_frame(case.label_map, case.image.orientation), labels)
    assert io.load_case(write_nifti("ct2.nii.gz", ramp(), LPS), case_id="x").label is None


def test_trailing_singleton_4d_is_squeezed(write_nifti):
    volume = io.load_volume(write_nifti("img4d.nii.gz", ramp()[..., None], LPS))
    assert volume.shape == SHAPE


@pytest.mark.parametrize("shape", [(9, 10), (9, 10, 11, 2)])
def test_2d_and_4d_images_are_refused(write_nifti, shape):
    path = write_nifti("bad.nii.gz", np.zeros(shape, np.int16))
    with pytest.raises(DataError, match=r"bad\.nii\.gz.*3D.*" + str(shape[0])):
        io.load_volume(path)


def test_shape_mismatch_names_both_shapes(write_nifti):
    image = write_nifti("ct.nii.gz", ramp(), LPS)
    label = write_nifti("lab.nii.gz", np.ones((9, 10, 13), np.uint8), LPS)
    with pytest.raises(DataError, match=r"\(9, 10, 13\).*\(9, 10, 11\)"):
        io.load_case(image, label)


def test_affine_mismatch_names_both_affines(write_nifti):
    image = write_nifti("ct.nii.gz", ramp(), LPS)
    shifted = LPS.copy()
    shifted[0, 3] += 1.5
    label = write_nifti("lab.nii.gz", np.ones(SHAPE, np.uint8), shifted)
    with pytest.raises(DataError, match=r"affine.*11\.5.*affine.*10\.0"):
        io.load_case(image, label)


@pytest.mark.parametrize("offset", [1e-5, 0.5 * io.AFFINE_ATOL])
def test_small_affine_difference_is_tolerated(write_nifti, offset):
    image = write_nifti("ct.nii.gz", ramp(), LPS)
    nudged = LPS.copy()
    nudged[0, 3] += offset
    labels = np.zeros(SHAPE, np.uint8)
    labels[2:5, 3:7, 4:9] = 1  # 3 x 4 x 5 = 60 voxels
    case = io.load_case(image, write_nifti("lab.nii.gz", labels, nudged))
    assert case.label.shape == case.image.shape and int(case.label.sum()) == 60
    assert np.array_equal(io.to_input_frame(case.label, case.image.orientation), labels.astype(bool))


def test_absent_target_names_the_ids_present(write_nifti):
    labels = np.zeros(SHAPE, np.uint8)
    labels[1, 1, 1], labels[2, 2, 2] = 3, 5
    with pytest.raises(DataError, match=r"\[7\].*present: \[0, 3, 5\]"):
        io.load_case(write_nifti("ct.nii.gz", ramp()), write_nifti("lab.nii.gz", labels), target_labels=(7,))


def test_truncated_nifti_is_refused_with_the_file_name(tmp_path, write_nifti):
    good = write_nifti("ct.nii.gz", np.random.default_rng(0).normal(size=(33, 34, 35)).astype(np.float32))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.nii\.gz.*truncated or corrupt"):
        io.load_volume(cut)
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not a nifti at all")
    with pytest.raises(DataError, match="garbage.nii.gz"):
        io.load_volume(garbage)


def test_missing_file_and_folder_without_ct(tmp_path):
    with pytest.raises(DataError, match="missing.nii.gz.*does not exist"):
        io.load_volume(tmp_path / "missing.nii.gz")
    empty = tmp_path / "empty_series"
    empty.mkdir()
    (empty / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="empty_series.*no CT"):
        io.load_volume(empty)


def test_non_finite_values_are_refused(write_nifti):
    data = ramp().astype(np.float32)
    data[4, 5, 6] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        io.load_volume(write_nifti("nan.nii.gz", data))


def test_inputs_are_never_modified(tmp_path, write_nifti, hash_tree):
    labels = np.zeros(SHAPE, np.uint8)
    labels[3:6, 3:6, 3:6] = 1
    image, label = write_nifti("ct.nii.gz", ramp(), LPS), write_nifti("lab.nii.gz", labels, LPS)
    before = [hash_tree(image), hash_tree(label)]
    case = io.load_case(image, label)
    io.save_mask(case.label, case.image, tmp_path / "out" / "mask.nii.gz")
    assert [hash_tree(image), hash_tree(label)] == before


def test_in_memory_arrays_are_not_modified(write_nifti, tmp_path):
    volume = io.load_volume(write_nifti("ct.nii.gz", ramp(), LAS))
    mask = volume.data > 0
    kept = mask.copy()
    io.save_mask(mask, volume, tmp_path / "m.nii.gz")
    np.testing.assert_array_equal(mask, kept)


def test_real_example_loads_as_ras_with_695_pancreas_voxels(real_example, tmp_path):
    case = io.load_case(real_example / "ct.nii.gz", real_example / "labels.nii.gz", target_labels=(7,),
                        case_id="totalseg")
    assert nib.aff2axcodes(case.image.affine) == ("R", "A", "S")
    assert case.image.shape == (122, 101, 112)
    assert case.image.data.dtype == np.float32
    assert int(case.label.sum()) == 695
    np.testing.assert_allclose(case.image.spacing, [3.0, 3.0, 3.0])
    out = io.save_mask(case.label, case.image, tmp_path / "pancreas.nii.gz")
    saved = nib.load(out)
    np.testing.assert_allclose(saved.affine, nib.load(real_example / "ct.nii.gz").affine, atol=1e-5)
    assert int(np.asarray(saved.dataobj).sum()) == 695


@pytest.mark.parametrize("perm", list(itertools.permutations(range(3)))[:3])
def test_to_input_frame_refuses_wrong_shape(perm, write_nifti):
    volume = io.load_volume(write_nifti("ct.nii.gz", ramp(), oriented_affine(perm, (1, -1, 1))))
    with pytest.raises(DataError, match="input shape"):
        io.to_input_frame(np.zeros((3, 4, 5)), volume.orientation)


def test_non_integer_or_negative_labels_are_refused(write_nifti):
    image = write_nifti("ct.nii.gz", ramp())
    half = np.zeros(SHAPE, np.float32)
    half[1, 1, 1] = 1.5
    with pytest.raises(DataError, match=r"non-integer label values.*1\.5"):
        io.load_case(image, write_nifti("half.nii.gz", half))
    negative = np.zeros(SHAPE, np.int16)
    negative[1, 1, 1] = -2
    with pytest.raises(DataError, match="negative label value -2"):
        io.load_case(image, write_nifti("neg.nii.gz", negative))


def test_c_order_copy_keeps_every_voxel_of_flipped_transposed_and_integer_volumes():
    from rstn_core.io import c_order_float32

    base = np.asfortranarray(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4))
    for view in (base, base[::-1], base[:, ::-1, ::-1].transpose(2, 0, 1), base.astype(np.int16)[::-1].T):
        out = c_order_float32(view)
        assert out.flags.c_contiguous and out.dtype == np.float32
        np.testing.assert_array_equal(out, np.ascontiguousarray(view, dtype=np.float32))
    ready = np.zeros((2, 2, 2), np.float32)
    assert c_order_float32(ready) is ready
