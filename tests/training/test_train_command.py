import pytest
import torch

from rstn_core.cli import main
from rstn_core.data.phantom import write_phantom_dataset
from rstn_core.models.bundle import load_bundle
from rstn_core.types import View


@pytest.mark.slow
def test_rstn_train_writes_a_bundle_and_resumes(tmp_path):
    write_phantom_dataset(tmp_path / "data", 3, seed=1, spacing=(8.0, 8.0, 8.0))
    args = ["train", "--data", str(tmp_path / "data"), "--folds", "3", "--recipe", "tiny", "--view", "axial",
            "--iterations", "S=2,I=1,J=1", "--labels", "7", "--out", str(tmp_path / "run"), "--no-progress",
            "--saliency", "5x5"]
    assert main(args) == 0
    bundle = load_bundle(tmp_path / "run" / "model.rstn")
    assert bundle.views == (View.AXIAL,) and bundle.data_config.target_labels == (7,)
    assert bundle.model_config.saliency == "5x5"  # the Table 1 variant asked for, kept in the bundle
    assert bundle.meta["training"]["fold"] == 0 and len(bundle.meta["training"]["train_cases"]) == 2
    first = {k: v.clone() for k, v in bundle.models[View.AXIAL].state_dict().items()}
    assert main(args + ["--resume"]) == 0  # finished run: resuming changes nothing
    again = load_bundle(tmp_path / "run" / "model.rstn").models[View.AXIAL].state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_rstn_train_refuses_bad_options(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--stages", "S,X"]) == 2
    assert "unknown stages ['X']" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--iterations", "S=a"]) == 2
    assert "--iterations" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--method", "c2f",
                 "--saliency", "1x1"]) == 2
    assert "C2F has no saliency module" in capsys.readouterr().err


@pytest.mark.slow
def test_rstn_train_init_starts_from_a_bundle_and_refuses_another_method(tmp_path, capsys):
    write_phantom_dataset(tmp_path / "data", 3, seed=1, spacing=(8.0, 8.0, 8.0))
    base = ["--data", str(tmp_path / "data"), "--folds", "3", "--recipe", "tiny", "--view", "axial",
            "--labels", "7", "--no-progress"]
    assert main(["train", *base, "--iterations", "S=2,I=1,J=1", "--out", str(tmp_path / "a")]) == 0
    start = load_bundle(tmp_path / "a" / "model.rstn").models[View.AXIAL].state_dict()
    # zero iterations: the new bundle holds exactly the initial weights
    assert main(["train", *base, "--iterations", "S=0,I=0,J=0", "--init", str(tmp_path / "a" / "model.rstn"),
                 "--out", str(tmp_path / "b")]) == 0
    again = load_bundle(tmp_path / "b" / "model.rstn")
    assert all(torch.equal(start[k], v) for k, v in again.models[View.AXIAL].state_dict().items())
    assert again.meta["training"]["init"] == str(tmp_path / "a" / "model.rstn")
    assert main(["train", *base, "--method", "c2f", "--init", str(tmp_path / "a" / "model.rstn"),
                 "--out", str(tmp_path / "c")]) == 2
    assert "does not fit" in capsys.readouterr().err


@pytest.mark.slow
def test_rstn_train_records_its_grid_and_domain_randomisation(tmp_path):
    write_phantom_dataset(tmp_path / "data", 3, seed=1, spacing=(8.0, 8.0, 8.0), appearance="random")
    args = ["train", "--data", str(tmp_path / "data"), "--folds", "3", "--recipe", "tiny", "--view", "axial",
            "--iterations", "S=2,I=1,J=1", "--labels", "7", "--out", str(tmp_path / "run"), "--no-progress",
            "--augment", "synthseg", "--spacing", "12", "12", "12"]
    assert main(args) == 0
    bundle = load_bundle(tmp_path / "run" / "model.rstn")
    # the engine resamples every input to the grid the bundle was trained at
    assert bundle.data_config.spacing == (12.0, 12.0, 12.0)
    assert bundle.meta["training"]["spacing"] == [12.0, 12.0, 12.0]
    assert bundle.meta["training"]["augment"]["p_class"] == 0.8


def test_paper_recipe_refuses_random_weights_and_names_the_vgg16_file(tmp_path, capsys):
    write_phantom_dataset(tmp_path / "data", 3, seed=1, spacing=(8.0, 8.0, 8.0))
    assert main(["train", "--data", str(tmp_path / "data"), "--recipe", "paper", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "vgg16-397923af.pth" in err and "https://download.pytorch.org/models/vgg16-397923af.pth" in err
    assert "--init random" in err
    assert not (tmp_path / "o").exists()  # refused before anything was trained or written
    assert main(["train", "--data", str(tmp_path / "data"), "--recipe", "paper", "--vgg16", "w.pth", "--init",
                 "random", "--out", str(tmp_path / "o")]) == 2
    assert "contradict" in capsys.readouterr().err


def test_paper_recipe_means_the_papers_run(monkeypatch):
    from rstn_core.commands.train import recipe_defaults

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert recipe_defaults("paper", None, None) == ("all", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert recipe_defaults("paper", None, None) == ("all", "cpu")
    assert recipe_defaults("paper", "axial", "cuda:1") == ("axial", "cuda:1")
    assert recipe_defaults("cpu-small", None, None) == ("axial", "cpu")


@pytest.mark.slow
def test_precision_is_a_recorded_option(tmp_path):
    write_phantom_dataset(tmp_path / "data", 3, seed=1, spacing=(8.0, 8.0, 8.0))
    args = ["train", "--data", str(tmp_path / "data"), "--folds", "3", "--recipe", "tiny", "--view", "axial",
            "--iterations", "S=1,I=1,J=1", "--labels", "7", "--out", str(tmp_path / "run"), "--no-progress",
            "--precision", "fp32"]
    assert main(args) == 0
    training = load_bundle(tmp_path / "run" / "model.rstn").meta["training"]
    assert training["train_config"]["precision"] == "fp32" and training["precision"]["resolved"] == "fp32"
    assert training["init"] == "random"  # the tiny preset trains from random weights, and says so
