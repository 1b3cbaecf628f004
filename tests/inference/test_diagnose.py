"""Plain-words explanations of empty results (rstn_core.inference.diagnose) and `rstn predict`'s warning."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
import torch
from engine_stubs import StubModel, make_volume

from rstn_core.commands import predict
from rstn_core.config import DataConfig, InferenceConfig
from rstn_core.inference.diagnose import explain_empty, hu_problem, spacing_problem
from rstn_core.inference.engine import RSTNEngine
from rstn_core.types import ALL_VIEWS, Case


def never_engine(spacing=None) -> RSTNEngine:
    models = {v: StubModel(coarse=lambda x: torch.full_like(x, -10.0), refine=lambda x: torch.full_like(x, -10.0))
              for v in ALL_VIEWS}
    return RSTNEngine(models, DataConfig(target_labels=(7,)), InferenceConfig(), spacing=spacing)


def ct_like(shape=(21, 23, 19), offset=0.0, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hu = rng.uniform(-120, 80, size=shape).astype(np.float32)
    hu[:3] = -1000.0  # air outside the body
    hu[10:14, 10:14] = 700.0  # bone
    return hu + offset


@pytest.mark.parametrize("offset, expected", [(0.0, None), (1024.0, "rescale to Hounsfield"),
                                              (2000.0, "rescale to Hounsfield")])
def test_hu_problem_recognises_unscaled_scanner_values(offset, expected):
    problem = hu_problem(ct_like(offset=offset))
    assert (problem is None) if expected is None else (expected in problem)


def test_hu_problem_names_flat_and_normalised_images():
    assert "hardly vary" in hu_problem(np.random.default_rng(0).uniform(0, 1, (9, 9, 9)))
    assert "no air or fat" in hu_problem(np.random.default_rng(0).uniform(0, 400, (9, 9, 9)))


def test_spacing_far_from_the_model_is_named():
    case = Case("c", make_volume(ct_like(), np.diag([0.6, 0.6, 5.0, 1.0])))
    assert "far from the 3 x 3 x 3 mm" in spacing_problem(case, (3.0, 3.0, 3.0))
    assert spacing_problem(case, (0.7, 0.7, 4.0)) is None
    assert spacing_problem(case, None) is None


def test_an_empty_run_is_explained_and_a_found_organ_is_not():
    case = Case("c", make_volume(ct_like(offset=1024.0)))
    engine = never_engine()
    state = engine.run(case)
    lines = explain_empty(case, state, engine)
    assert lines[0].startswith("the model found nothing: the coarse stage is empty")
    assert any("rescale to Hounsfield" in line for line in lines)
    plain = Case("c", make_volume(ct_like()))
    lines = explain_empty(plain, engine.run(plain), engine)
    assert "differs from what the model was trained on" in lines[-1]
    hit = state.__class__(round=1, fused_prob=state.fused_prob, view_probs={}, mask=np.ones_like(state.mask))
    assert explain_empty(case, hit, engine) == []


def test_predict_warns_when_it_finds_nothing(tmp_path, caplog):
    ct = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(ct_like().astype(np.int16), np.eye(4)), ct)
    out = tmp_path / "mask.nii.gz"
    with caplog.at_level(logging.WARNING, logger="rstn_core.commands.predict"):
        summary = predict.predict_case([predict.Organ(7, "pancreas", never_engine())], ct, out, progress=False)
    assert summary["voxels"] == 0 and out.exists()  # exit 0 and a (empty) mask: not an error
    assert "the model found nothing" in caplog.text and "likely cause" in caplog.text
