"""`rstn predict`: files, DICOM/batch folders, refusals, and masks that overlay their input."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "inference"))
from engine_stubs import StubModel, ellipsoid  # noqa: E402

from rstn_core.commands import predict  # noqa: E402
from rstn_core.config import DataConfig, InferenceConfig, ModelConfig  # noqa: E402
from rstn_core.errors import CheckpointError, DataError  # noqa: E402
from rstn_core.inference.engine import RSTNEngine  # noqa: E402
from rstn_core.types import ALL_VIEWS, View  # noqa: E402

LPS = np.diag([-0.8, -0.8, 2.5, 1.0])
LPS[:3, 3] = [10.0, 20.0, -30.0]
SHAPE = (21, 23, 19)


def parse(*argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    predict.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv] + ["--no-progress"])


def write_ct(folder: Path, name: str = "ct", seed: int = 0) -> tuple[Path, Path, np.ndarray]:
    """An LPS-oriented CT (organ at 200 HU) and its label map (pancreas = 7), in the input frame."""
    rng = np.random.default_rng(seed)
    organ = ellipsoid(SHAPE, centre=(8, 12, 9), radii=(4, 6, 3))
    hu = rng.uniform(-100, 100, size=SHAPE).astype(np.float32)
    hu[organ] = 200.0
    folder.mkdir(parents=True, exist_ok=True)
    ct, label = folder / f"{name}.nii.gz", folder / f"{name}_label.nii.gz"
    nib.save(nib.Nifti1Image(hu, LPS), ct)
    nib.save(nib.Nifti1Image(organ.astype(np.uint8) * 7, LPS), label)
    return ct, label, organ


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    from rstn_core.models.bundle import ModelBundle, save_bundle
    from rstn_core.models.rstn import build_model

    config = ModelConfig.from_preset("tiny")
    models = {View.AXIAL: build_model("rstn", config)}
    path = tmp_path_factory.mktemp("bundle") / "pancreas.rstn"
    save_bundle(ModelBundle("rstn", config, DataConfig(target_labels=(7,)), models, {"organ": "pancreas"}), path)
    return path


def test_predict_writes_a_mask_on_the_input_grid(tmp_path, tiny_bundle, capsys):
    ct, label, _ = write_ct(tmp_path)
    out = tmp_path / "out" / "mask.nii.gz"
    assert predict.run(parse("-i", ct, "-o", out, "--model", tiny_bundle, "--label", label, "--save-prob",
                             "--organ", "pancreas", "--max-rounds", "2")) == 0
    img = nib.load(out)
    assert img.shape == SHAPE and np.allclose(img.affine, LPS)
    assert predict.prob_path(out).exists()
    line = capsys.readouterr().out
    assert "round" in line and "mL" in line and "DSC" in line and str(out) in line


def test_existing_output_is_refused_unless_overwrite(tmp_path, tiny_bundle):
    ct, _, _ = write_ct(tmp_path)
    out = tmp_path / "mask.nii.gz"
    out.write_bytes(b"old")
    with pytest.raises(DataError, match="already exists"):
        predict.run(parse("-i", ct, "-o", out, "--model", tiny_bundle))
    assert predict.run(parse("-i", ct, "-o", out, "--model", tiny_bundle, "--overwrite", "--max-rounds", "1")) == 0
    assert nib.load(out).shape == SHAPE


@pytest.mark.parametrize(
    "extra, error, message",
    [
        (["--organ", "spleen"], CheckpointError, "segments 'pancreas'"),
        (["--organ", "3"], CheckpointError, r"label ids \[7\]"),
        (["--views", "coronal"], CheckpointError, "coronal"),
        (["--method", "c2f"], CheckpointError, "rstn model"),
        (["--method", "oracle"], Exception, "--label"),
    ],
)
def test_bundles_for_another_task_are_refused(tmp_path, tiny_bundle, extra, error, message):
    ct, _, _ = write_ct(tmp_path)
    with pytest.raises(error, match=message):
        predict.run(parse("-i", ct, "-o", tmp_path / "m.nii.gz", "--model", tiny_bundle, *extra))


def test_missing_demo_bundle_names_its_path(tmp_path, monkeypatch):
    ct, _, _ = write_ct(tmp_path)
    monkeypatch.setattr(predict, "DEMO_BUNDLE", tmp_path / "demo" / "rstn.rstn")
    with pytest.raises(CheckpointError, match=r"demo[/\\]rstn\.rstn"):
        predict.run(parse("-i", ct, "-o", tmp_path / "m.nii.gz"))


def test_a_ct_smaller_than_a_window_is_refused(tmp_path, tiny_bundle):
    ct = tmp_path / "thin.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(21, 23, 2)).astype(np.float32), LPS), ct)
    with pytest.raises(DataError, match="smaller than a 3-slice window"):
        predict.run(parse("-i", ct, "-o", tmp_path / "m.nii.gz", "--model", tiny_bundle))


def test_a_folder_of_cases_is_predicted_and_reruns_skip_finished(tmp_path, tiny_bundle, capsys):
    for i in range(2):
        ct, label, _ = write_ct(tmp_path / "cases", f"case{i}", seed=i)
        label.unlink()
    out = tmp_path / "pred"
    args = parse("-i", tmp_path / "cases", "-o", out, "--model", tiny_bundle, "--max-rounds", "1")
    assert predict.run(args) == 0
    done = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # records are hidden
    assert done == ["case0.nii.gz", "case1.nii.gz"]
    stamp = (out / "case0.nii.gz").stat().st_mtime_ns
    capsys.readouterr()
    assert predict.run(args) == 0
    assert "already predicted" in capsys.readouterr().out
    assert (out / "case0.nii.gz").stat().st_mtime_ns == stamp


def test_torchrun_shards_cases_by_rank():
    cases = list(range(7))
    assert predict.shard(cases, {"RANK": "1", "WORLD_SIZE": "3"}) == [1, 4]
    assert predict.shard(cases, {}) == cases


def stub_organ(label_id: int, name: str, hu_low: float, confidence: float = 10.0) -> predict.Organ:
    """An engine whose stubs call organ every voxel whose normalised intensity exceeds hu_low's."""
    x_low = (hu_low + 100) / 340
    import torch

    def logits(x):
        return torch.where(x > x_low, confidence, -10.0)

    models = {v: StubModel(coarse=logits, refine=logits) for v in ALL_VIEWS}
    engine = RSTNEngine(models, DataConfig(target_labels=(label_id,)), InferenceConfig(margin=2))
    return predict.Organ(label_id, name, engine)


def test_prediction_for_an_lps_input_overlays_its_label(tmp_path):
    ct, label, organ = write_ct(tmp_path)
    out = tmp_path / "mask.nii.gz"
    summary = predict.predict_case([stub_organ(7, "pancreas", 150.0)], ct, out, label, progress=False)
    assert summary["dsc"] == 1.0 and summary["rounds"] == 1 and summary["stopped"] == "converged"
    written = nib.load(out)
    assert np.allclose(written.affine, nib.load(label).affine)
    assert np.array_equal(np.asarray(written.dataobj).astype(bool), organ)  # voxel for voxel, input frame
    assert summary["volume_ml"] == pytest.approx(organ.sum() * 0.8 * 0.8 * 2.5 / 1000)


def test_several_organs_make_one_label_map_with_a_table(tmp_path):
    ct, _, organ = write_ct(tmp_path)
    out = tmp_path / "organs.nii.gz"
    # organ 7 claims the organ (200 HU); organ 3 claims everything above -120 HU, i.e. every voxel
    predict.predict_case([stub_organ(7, "pancreas", 150.0), stub_organ(3, "body", -120.0, 3.0)], ct, out,
                         progress=False)
    labels = np.asarray(nib.load(out).dataobj)
    assert set(np.unique(labels)) == {3, 7}
    assert np.array_equal(labels == 7, organ)
    assert json.loads((tmp_path / "organs.labels.json").read_text()) == {"0": "background", "3": "body",
                                                                          "7": "pancreas"}


def test_a_dicom_folder_is_one_case(tmp_path):
    from rstn_core.dicom_write import write_dicom_series

    organ = ellipsoid(SHAPE, centre=(8, 12, 9), radii=(4, 6, 3))
    hu = np.random.default_rng(0).uniform(-100, 100, size=SHAPE).round().astype(np.float32)
    hu[organ] = 200.0
    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    write_dicom_series(hu, affine, tmp_path / "PANCREAS_0001")
    cases, batch = predict.find_cases(tmp_path / "PANCREAS_0001")
    assert not batch and cases[0][0] == "PANCREAS_0001"
    out = tmp_path / "out.nii.gz"
    summary = predict.predict_case([stub_organ(7, "pancreas", 150.0)], cases[0][1], out, progress=False)
    assert summary["voxels"] == organ.sum()
    assert np.array_equal(np.asarray(nib.load(out).dataobj).astype(bool), organ)
