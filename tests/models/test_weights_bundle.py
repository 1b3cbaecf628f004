import pickle

import pytest
import torch

from rstn_core.config import DataConfig, ModelConfig
from rstn_core.errors import CheckpointError
from rstn_core.models.bundle import ModelBundle, load_bundle, save_bundle
from rstn_core.models.fcn import FCN8s
from rstn_core.models.rstn import build_model
from rstn_core.models.weights import load_vgg16_weights
from rstn_core.types import View

torch.set_num_threads(1)


def fake_vgg16_state(width_scale=1):
    """A torchvision-layout VGG16 state dict with the real shapes (values arange-like)."""
    state = {}
    cin = 3
    for index, c in zip([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
                        [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]):
        state[f"features.{index}.weight"] = torch.full((c, cin, 3, 3), index / 100)
        state[f"features.{index}.bias"] = torch.full((c,), index / 10)
        cin = c
    state["classifier.0.weight"] = torch.arange(4096 * 25088, dtype=torch.float32).reshape(4096, 25088) * 1e-9
    state["classifier.0.bias"] = torch.ones(4096)
    state["classifier.3.weight"] = torch.eye(4096)
    state["classifier.3.bias"] = torch.zeros(4096)
    state["classifier.6.weight"] = torch.zeros(1000, 4096)
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


@pytest.mark.slow
def test_vgg16_weights_load_into_full_width_fcn(tmp_path):
    state = fake_vgg16_state()
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = FCN8s(width=1.0)
    load_vgg16_weights(model, str(path))
    assert torch.equal(model.features[28].weight, state["features.28.weight"])
    assert torch.equal(model.fc6.weight, state["classifier.0.weight"].reshape(4096, 512, 7, 7))
    assert torch.equal(model.fc7.weight[:, :, 0, 0], torch.eye(4096))
    assert torch.count_nonzero(model.score_fr.weight) == 0

    del state["features.28.weight"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="features.28.weight"):
        load_vgg16_weights(FCN8s(width=1.0), str(path))


def test_vgg16_weights_refuse_small_width_and_wrong_shapes(tmp_path):
    with pytest.raises(CheckpointError, match="width 0.03125"):
        load_vgg16_weights(FCN8s(width=0.03125), str(tmp_path / "missing.pth"))
    from rstn_core.models.weights import vgg16_to_fcn_state

    model = FCN8s(width=0.5)
    state = {k: torch.zeros(1) for k in ["features.0.weight"]}
    with pytest.raises(CheckpointError, match="missing VGG16 keys"):
        vgg16_to_fcn_state(state, model)
    good = {k: torch.zeros_like(v) for k, v in model.state_dict().items() if k.startswith("features.")}
    good |= {"classifier.0.weight": torch.zeros(2048, 256 * 49), "classifier.0.bias": torch.zeros(2048),
             "classifier.3.weight": torch.zeros(2048, 2048), "classifier.3.bias": torch.zeros(2048)}
    vgg16_to_fcn_state(good, model)  # fits
    good["features.0.weight"] = torch.zeros(64, 3, 3, 3)
    with pytest.raises(CheckpointError, match=r"features.0.weight: file has \(64, 3, 3, 3\)"):
        vgg16_to_fcn_state(good, model)


def make_bundle(method="rstn", views=(View.AXIAL,)):
    torch.manual_seed(3)
    cfg = ModelConfig.from_preset("tiny", saliency="3x3-5x5")
    models = {}
    for v in views:
        m = build_model(method, cfg)
        for p in m.parameters():
            torch.nn.init.normal_(p, std=0.05)
        models[v] = m.eval()
    return ModelBundle(method, cfg, DataConfig(target_labels=(7,)), models,
                       {"organ": "pancreas", "target_labels": [7], "training": {"iterations": 3}})


@pytest.mark.parametrize("method,views", [("rstn", (View.AXIAL,)), ("c2f", (View.AXIAL, View.SAGITTAL))])
def test_bundle_round_trip_gives_identical_outputs(tmp_path, method, views):
    bundle = make_bundle(method, views)
    path = save_bundle(bundle, tmp_path / "model.rstn")
    loaded = load_bundle(path)
    assert loaded.method == method and loaded.views == views
    assert loaded.model_config == bundle.model_config and loaded.data_config == bundle.data_config
    assert loaded.meta["target_labels"] == [7]
    x = torch.rand(1, 3, 13, 17)
    for v in views:
        a, b = bundle.models[v], loaded.models[v]
        assert not b.training
        with torch.no_grad():
            assert torch.equal(a.coarse(x), b.coarse(x))
            assert torch.equal(a.refine(x), b.refine(x))
            assert torch.equal(a.saliency(x), b.saliency(x))
    assert not list(tmp_path.glob(".*tmp"))


def test_bundle_refuses_foreign_files(tmp_path):
    bundle = make_bundle()
    path = save_bundle(bundle, tmp_path / "model.rstn")
    payload = torch.load(path, weights_only=True)

    cases = {
        "no_format": ({k: v for k, v in payload.items() if k != "format"}, "not an RSTN Studio model bundle"),
        "version": (payload | {"format_version": 99}, "version 99"),
        "config": (payload | {"model_config": {"width": 7.0}}, "width must be in"),
        "view": (payload | {"views": ["axial", "coronal"]}, "'coronal' is listed"),
        "weights": (payload | {"model_config": payload["model_config"] | {"saliency": "1x1"}}, "do not fit"),
    }
    for name, (bad, message) in cases.items():
        p = tmp_path / f"{name}.rstn"
        torch.save(bad, p)
        with pytest.raises(CheckpointError, match=message) as info:
            load_bundle(p)
        assert str(p) in str(info.value)
    (tmp_path / "text.rstn").write_text("hello")
    with pytest.raises(CheckpointError, match="text.rstn"):
        load_bundle(tmp_path / "text.rstn")
    with pytest.raises(CheckpointError, match="not found"):
        load_bundle(tmp_path / "absent.rstn")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_bundle_with_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.rstn"
    with open(path, "wb") as f:
        pickle.dump({"format": "rstn-bundle", "x": _Evil(str(marker))}, f)
    with pytest.raises(CheckpointError, match="evil.rstn"):
        load_bundle(path)
    assert not marker.exists()


def test_bundle_meta_must_be_plain(tmp_path):
    bundle = make_bundle()
    bundle.meta["bad"] = object()
    with pytest.raises(ValueError, match="bad"):
        save_bundle(bundle, tmp_path / "m.rstn")
