"""Cross-validation end to end: tiny untrained fold bundles on a 4-case generic dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rstn_core.commands import evaluate
from rstn_core.config import DataConfig, ModelConfig
from rstn_core.errors import CheckpointError
from rstn_core.evaluation.crossval import cross_validate, find_fold_bundles
from rstn_core.types import View

SHAPE = (21, 23, 19)


def write_dataset(root: Path, n: int = 4) -> None:
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(n):
        rng = np.random.default_rng(i)
        hu = rng.uniform(-100, 100, size=SHAPE).astype(np.float32)
        label = np.zeros(SHAPE, np.uint8)
        label[6 + i : 12 + i, 8:14, 5:12] = 1
        hu[label > 0] = 200
        nib.save(nib.Nifti1Image(hu, np.eye(4)), root / "images" / f"case{i}.nii.gz")
        nib.save(nib.Nifti1Image(label, np.eye(4)), root / "labels" / f"case{i}.nii.gz")


def write_bundles(folder: Path, n_folds: int = 2) -> None:
    from rstn_core.models.bundle import ModelBundle, save_bundle
    from rstn_core.models.rstn import build_model

    config = ModelConfig.from_preset("tiny")
    folder.mkdir(parents=True)
    for method, prefix in (("rstn", ""), ("c2f", "c2f_")):
        for k in range(n_folds):
            models = {View.AXIAL: build_model(method, config)}
            bundle = ModelBundle(method, config, DataConfig(), models, {"fold": k})
            save_bundle(bundle, folder / f"{prefix}fold{k}.rstn")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    write_dataset(root / "data")
    write_bundles(root / "models")
    return root


def test_fold_bundles_are_found_by_name(setup):
    bundles, split = find_fold_bundles(setup / "models")
    assert [p.name for p in bundles["rstn"]] == ["fold0.rstn", "fold1.rstn"]
    assert [p.name for p in bundles["c2f"]] == ["c2f_fold0.rstn", "c2f_fold1.rstn"] and split is None


def test_cross_validate_and_the_evaluate_command(setup, capsys):
    from rstn_core.config import InferenceConfig

    results = cross_validate(setup / "data", setup / "models", ("rstn", "c2f", "oracle"),
                             InferenceConfig(max_rounds=1))
    assert len(results) == 12
    assert sorted({(r.fold, r.case_id) for r in results}) == [(0, "case0"), (0, "case1"), (1, "case2"), (1, "case3")]
    assert all(len(r.dsc_per_round) == 2 and len(r.inter_round_dsc) == 1 for r in results)
    mapping = setup / "models.json"
    mapping.write_text(json.dumps({"rstn": ["models/fold0.rstn", "models/fold1.rstn"],
                                   "split": [["case0", "case2"], ["case1", "case3"]]}))
    parser = argparse.ArgumentParser()
    evaluate.add_arguments(parser)
    args = parser.parse_args(["--data", str(setup / "data"), "--models", str(mapping), "--methods", "rstn",
                              "--out", str(setup / "out"), "--max-rounds", "1", "--device", "cpu"])
    assert evaluate.run(args) == 0
    data = json.loads((setup / "out" / "results.json").read_text())
    assert [(c["fold"], c["case_id"]) for c in data["cases"]] == [(0, "case0"), (0, "case2"), (1, "case1"),
                                                                 (1, "case3")]
    assert "rstn: DSC" in capsys.readouterr().out
    assert (setup / "out" / "dsc_boxplot.png").exists() and (setup / "out" / "convergence.png").exists()


def test_missing_method_bundles_are_named(setup, tmp_path):
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "fold0.rstn").write_bytes((setup / "models" / "fold0.rstn").read_bytes())
    with pytest.raises(CheckpointError, match=r"no \['c2f'\] fold bundles"):
        cross_validate(setup / "data", tmp_path / "only", ("c2f",))


@pytest.mark.parametrize("method, given, expected", [
    ("c2f", {}, ("vote", "mean")),  # Zhou et al.: vote at round 0, the mean of the views after
    ("rstn", {}, ("mean", "mean")),
    ("oracle", {}, ("mean", "mean")),
    ("c2f", {"fusion": "vote", "fine_fusion": "vote"}, ("vote", "vote")),  # an explicit ablation stays
    ("rstn", {"fusion": "vote"}, ("vote", "mean")),
])
def test_each_method_is_evaluated_with_its_releases_fusion(method, given, expected):
    from rstn_core.config import InferenceConfig
    from rstn_core.evaluation.crossval import method_config

    config = method_config(InferenceConfig(max_rounds=3, **given), method)
    assert (config.fusion, config.fine_fusion) == expected and config.max_rounds == 3
