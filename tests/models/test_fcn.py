import pytest
import torch

from rstn_core.config import ModelConfig
from rstn_core.models.fcn import FCN8s, bilinear_kernel, build_fcn8s, scaled

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_fcn():
    torch.manual_seed(0)
    return FCN8s(width=0.03125).eval()


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (13, 17), (33, 34), (7, 61), (64, 65)])
def test_output_has_input_size(tiny_fcn, size):
    with torch.no_grad():
        out = tiny_fcn(torch.rand(2, 3, *size))
    assert out.shape == (2, 3, *size)


def test_score_layers_start_at_zero_so_logits_are_zero(tiny_fcn):
    with torch.no_grad():
        out = tiny_fcn(torch.rand(1, 3, 19, 23))
    assert torch.count_nonzero(out) == 0


def test_upsampling_is_fixed_bilinear_buffer():
    model = FCN8s(width=0.03125)
    names = [n for n, _ in model.named_parameters()]
    assert not any("upscore" in n for n in names)
    assert "upscore8.kernel" in model.state_dict()
    k = bilinear_kernel(1, 4)[0, 0]
    assert torch.allclose(k[1], torch.tensor([0.1875, 0.5625, 0.5625, 0.1875]))


def test_padding_pooling_and_fc_layout_follow_fcn8s():
    model = FCN8s(width=1.0)
    assert model.features[0].padding == (100, 100)
    assert all(m.ceil_mode for m in model.features if isinstance(m, torch.nn.MaxPool2d))
    assert model.fc6.kernel_size == (7, 7) and model.fc6.out_channels == 4096
    assert model.fc7.kernel_size == (1, 1)
    assert model.score_fr.out_channels == model.score_pool4.out_channels == model.score_pool3.out_channels == 3
    assert model.drop6.p == 0.5


@pytest.mark.parametrize("preset,c64,c4096", [("tiny", 2, 128), ("cpu-small", 4, 256)])
def test_width_multiplier(preset, c64, c4096):
    model = build_fcn8s(ModelConfig.from_preset(preset))
    assert model.features[0].out_channels == c64 and model.fc6.out_channels == c4096
    assert scaled(512, 0.001) == 1


def test_input_downsample_keeps_output_size():
    model = build_fcn8s(ModelConfig.from_preset("tiny", input_downsample=2)).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 13, 17)).shape == (1, 3, 13, 17)


def test_gradients_reach_the_trunk_once_scores_are_nonzero():
    torch.manual_seed(1)
    model = FCN8s(width=0.03125, dropout=0.0)
    torch.nn.init.normal_(model.score_fr.weight)
    model(torch.rand(1, 3, 11, 9)).sum().backward()
    assert model.features[0].weight.grad.abs().sum() > 0
