"""Resampling to the model's grid and back (rstn_core.resample) and the spacing-aware engine."""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent / "inference"))
from engine_stubs import StubModel, make_volume  # noqa: E402

from rstn_core.commands import predict  # noqa: E402
from rstn_core.config import DataConfig, InferenceConfig  # noqa: E402
from rstn_core.errors import DataError  # noqa: E402
from rstn_core.evaluation.metrics import dsc  # noqa: E402
from rstn_core.inference.engine import RSTNEngine  # noqa: E402
from rstn_core.resample import Resampling, mask_on_input, resample_case, source_coords  # noqa: E402
from rstn_core.types import ALL_VIEWS, Case  # noqa: E402

ORGAN_HU = 200.0


def physical_case(spacing, fov_mm=(96.0, 84.0, 66.0), radii_mm=(18.0, 11.0, 9.0), seed=0) -> Case:
    """The same ellipsoidal 'organ' (200 HU, in -100..100 HU noise) sampled at ``spacing`` mm."""
    shape = tuple(int(round(f / s)) for f, s in zip(fov_mm, spacing))
    centres = [(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)]
    x, y, z = np.meshgrid(*centres, indexing="ij")
    organ = ((x - 50) / radii_mm[0]) ** 2 + ((y - 40) / radii_mm[1]) ** 2 + ((z - 30) / radii_mm[2]) ** 2 <= 1
    hu = np.random.default_rng(seed).uniform(-100, 100, size=shape).astype(np.float32)
    hu[organ] = ORGAN_HU
    affine = np.diag([*spacing, 1.0])
    return Case("phys", make_volume(hu, affine), organ)


def threshold_engine(spacing=(3.0, 3.0, 3.0)) -> RSTNEngine:
    x_low = (120.0 + 100) / 340

    def logits(x):
        return torch.where(x > x_low, 10.0, -10.0)

    models = {v: StubModel(coarse=logits, refine=logits) for v in ALL_VIEWS}
    return RSTNEngine(models, DataConfig(target_labels=(7,)), InferenceConfig(margin=2), spacing=spacing)


def test_source_coords_align_the_field_of_view_edges():
    # 4 coarse voxels over 12 fine ones: centres at fine positions 1, 4, 7, 10
    assert np.allclose(source_coords(12, 4), [1.0, 4.0, 7.0, 10.0])
    assert np.allclose(source_coords(3, 3), [0.0, 1.0, 2.0])


def test_each_axis_is_filtered_then_sampled_as_one_matrix_product():
    """The operator form equals a Gaussian (edges repeated) then linear sampling of the data itself."""
    from scipy import ndimage

    from rstn_core.resample import axis_operator, resample_axis

    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 300.0, size=(37, 5, 4)).astype(np.float32)
    for n_out in (11, 37, 60):  # shrink (anti-aliased), same size, grow (linear only)
        factor = 37 / n_out
        ref = x if factor <= 1 else ndimage.gaussian_filter1d(x, sigma=(factor - 1) / 2, axis=0, mode="nearest",
                                                                truncate=3.0)
        ref = resample_axis(ref, 0, source_coords(37, n_out), order=1)
        got = np.tensordot(axis_operator(37, n_out), x, axes=(1, 0))
        np.testing.assert_allclose(got, ref, atol=1e-3)
    constant = np.full((37, 3, 3), -1000.0, np.float32)  # a constant stays constant (rows sum to 1)
    np.testing.assert_allclose(np.tensordot(axis_operator(37, 11), constant, axes=(1, 0)), -1000.0, rtol=1e-5)


def test_model_grid_keeps_the_world_position_of_the_field_of_view():
    case = physical_case((1.0, 1.0, 1.5))
    work = resample_case(case, (3.0, 3.0, 3.0))
    record = work.meta["resampling"]
    assert work.image.shape == (32, 28, 22)
    assert np.allclose(work.image.spacing, 3.0)
    # the corner of the field of view (voxel edge) is the same point in the world on both grids
    corner_in = case.image.affine @ np.array([-0.5, -0.5, -0.5, 1.0])
    corner_model = record.model_affine() @ np.array([-0.5, -0.5, -0.5, 1.0])
    assert np.allclose(corner_in, corner_model)


def test_a_case_at_the_model_spacing_is_used_as_it_is():
    case = physical_case((3.0, 3.0, 3.0))
    assert resample_case(case, (3.0, 3.0, 3.0)) is case
    assert resample_case(case, (3.1, 2.9, 3.0)) is case  # within 5 %
    assert resample_case(case, None) is case
    assert threshold_engine(spacing=None).prepare(case) is case


def test_the_same_organ_at_1mm_and_3mm_gives_masks_that_agree():
    fine, coarse = physical_case((1.0, 1.0, 1.0)), physical_case((3.0, 3.0, 3.0))
    engine = threshold_engine()
    fine_work = engine.prepare(fine)
    final_fine = engine.run(fine)
    final_coarse = engine.run(coarse)
    assert final_fine.dsc_grid == "input" and final_fine.dsc_vs_truth > 0.9
    on_fine = mask_on_input(fine_work, final_fine.mask)  # 1 mm grid
    assert on_fine.shape == fine.image.shape
    coarse_on_fine = Resampling(fine.image, coarse.image.shape).mask_to_input(final_coarse.mask)
    assert dsc(on_fine, coarse_on_fine) > 0.9
    assert final_fine.dsc_vs_truth == pytest.approx(dsc(on_fine, fine.label))


def test_an_anisotropic_input_round_trips_to_its_own_grid(tmp_path):
    spacing = (0.7, 0.7, 2.5)
    case = physical_case(spacing, fov_mm=(70.0, 63.0, 60.0), radii_mm=(20.0, 14.0, 12.0))
    work = resample_case(case, (3.0, 3.0, 3.0))
    record = work.meta["resampling"]
    assert work.image.shape == (23, 21, 20)
    back = record.mask_to_input(work.label)
    prob = record.prob_to_input(work.label.astype(np.float32))
    assert back.shape == prob.shape == case.image.shape == (100, 90, 24)
    assert dsc(back, case.label) > 0.85
    assert prob.dtype == np.float32 and 0.0 <= prob.min() and prob.max() <= 1.0


def test_predict_writes_an_anisotropic_result_on_the_input_grid_and_affine(tmp_path):
    case = physical_case((0.7, 0.7, 2.5), fov_mm=(70.0, 63.0, 60.0), radii_mm=(20.0, 14.0, 12.0))
    affine = np.diag([-0.7, -0.7, 2.5, 1.0])  # LPS on disk
    affine[:3, 3] = [30.0, 20.0, -10.0]
    on_disk = case.image.data[::-1, ::-1, :]
    ct, label = tmp_path / "ct.nii.gz", tmp_path / "label.nii.gz"
    nib.save(nib.Nifti1Image(on_disk.astype(np.int16), affine), ct)
    nib.save(nib.Nifti1Image((case.label[::-1, ::-1, :] * 7).astype(np.uint8), affine), label)
    out = tmp_path / "mask.nii.gz"
    organ = predict.Organ(7, "pancreas", threshold_engine())
    summary = predict.predict_case([organ], ct, out, label, save_prob=True, progress=False)
    written = nib.load(out)
    assert written.shape == on_disk.shape and np.allclose(written.affine, affine)
    assert summary["dsc_grid"] == "input" and summary["dsc"] > 0.85
    assert "model grid 3 x 3 x 3 mm" in summary["grid"]
    assert nib.load(predict.prob_path(out)).shape == on_disk.shape
    mask = np.asarray(written.dataobj).astype(bool)
    assert dsc(mask, case.label[::-1, ::-1, :]) == pytest.approx(summary["dsc"])


def test_a_wrong_spacing_cannot_exhaust_memory():
    case = physical_case((3.0, 3.0, 3.0))
    with pytest.raises(DataError, match="more than the limit"):
        resample_case(case, (0.01, 0.01, 0.01))


@pytest.mark.slow
def test_memory_stays_bounded_on_a_512x512x300_input():
    """No full-volume float64 copy: resampling a 512 x 512 x 300 float32 CT to 3 mm and bringing a small
    mask back peak well under twice the input's own size (tracemalloc sees NumPy's buffers)."""
    shape = (512, 512, 300)
    hu = np.full(shape, -50.0, dtype=np.float32)
    hu[200:260, 220:260, 140:170] = 200.0
    volume = make_volume(hu, np.diag([0.8, 0.8, 1.0, 1.0]))
    record = Resampling(volume, (137, 137, 100))
    input_bytes = hu.nbytes
    tracemalloc.start()
    model = record.image_to_model(hu)
    mask = model > 100
    back = record.mask_to_input(mask)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert model.shape == (137, 137, 100) and back.shape == shape
    assert back[230, 240, 155] and not back[10, 10, 10]
    assert peak < 1.6 * input_bytes, f"peak {peak / 1e6:.0f} MB for a {input_bytes / 1e6:.0f} MB input"


def test_predict_reports_the_seconds_of_every_round(tmp_path, monkeypatch):
    from dataclasses import replace

    case = physical_case((3.0, 3.0, 3.0))
    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(case.image.data.astype(np.int16), case.image.affine), ct)
    engine = threshold_engine()
    rounds = []

    def timed_iterate(work):
        for state in RSTNEngine.iterate(engine, work):
            rounds.append(state)
            yield replace(state, seconds=1.5)

    monkeypatch.setattr(engine, "iterate", timed_iterate)
    summary = predict.predict_case([predict.Organ(7, "pancreas", engine)], ct, tmp_path / "m.nii.gz", progress=False)
    assert len(rounds) >= 2 and summary["seconds"] == pytest.approx(1.5 * len(rounds))
