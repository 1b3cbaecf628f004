import pytest
import torch

from rstn_core.config import SALIENCY_VARIANTS, ModelConfig
from rstn_core.models.losses import soft_dice_loss, unroll_weights
from rstn_core.models.rstn import build_c2f, build_model, build_rstn
from rstn_core.models.saliency import build_saliency
from rstn_core.types import BBox

torch.set_num_threads(1)


@pytest.mark.parametrize("variant", SALIENCY_VARIANTS)
def test_saliency_variants_preserve_size_and_start_near_identity(variant):
    g = build_saliency(variant, bias=1.5)
    prob = torch.rand(2, 3, 13, 17)
    out = g(prob)
    assert out.shape == prob.shape
    assert torch.allclose(out, torch.full_like(out, 1.5))
    convs = [m for m in g if isinstance(m, torch.nn.Conv2d)]
    assert all(c.in_channels == 3 and c.out_channels == 3 for c in convs)
    assert not isinstance(list(g)[-1], torch.nn.ReLU)  # no final activation


def test_saliency_layouts():
    assert [m.kernel_size for m in build_saliency("3x3-5x5") if isinstance(m, torch.nn.Conv2d)] == [(3, 3), (5, 5)]
    with pytest.raises(ValueError, match="7x7"):
        build_saliency("7x7")


def test_unroll_weights():
    assert unroll_weights(1) == pytest.approx((1 / 3, 2 / 3))
    assert unroll_weights(2) == pytest.approx((1 / 5, 2 / 5, 2 / 5))
    assert sum(unroll_weights(5)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="got 0"):
        unroll_weights(0)


def test_soft_dice_hand_computed():
    p = torch.tensor([[1.0, 0.5, 0.0, 0.0]])
    y = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    # 1 - 2*1.5 / (2 + 1.5)
    assert soft_dice_loss(p, y).item() == pytest.approx(1 - 3 / 3.5, abs=1e-6)
    # per-sample then averaged: a perfect and a disjoint sample -> 0.5
    p2 = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    y2 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert soft_dice_loss(p2, y2).item() == pytest.approx(0.5, abs=1e-6)
    assert soft_dice_loss(torch.zeros(1, 5), torch.zeros(1, 5)).item() == pytest.approx(0.0)
    with pytest.raises(ValueError, match="differs"):
        soft_dice_loss(torch.zeros(1, 5), torch.zeros(1, 4))


def test_rstn_protocol_and_c2f():
    cfg = ModelConfig.from_preset("tiny")
    rstn, c2f = build_rstn(cfg), build_c2f(cfg)
    assert rstn.uses_saliency and not c2f.uses_saliency
    x = torch.rand(2, 3, 15, 21)
    with torch.no_grad():
        assert rstn.coarse(x).shape == x.shape
        assert rstn.refine(x[..., 2:9, 3:8]).shape == (2, 3, 7, 5)
        assert torch.equal(c2f.saliency(x), torch.ones_like(x))
        assert torch.allclose(rstn.saliency(x), torch.ones_like(x))
    assert build_model("c2f", cfg).saliency_net is None
    with pytest.raises(ValueError, match="'unet'"):
        build_model("unet", cfg)


def test_refine_in_boxes_uses_each_samples_box():
    torch.manual_seed(0)
    model = build_rstn(ModelConfig.from_preset("tiny", dropout=0.0)).eval()
    torch.nn.init.normal_(model.fine_net.score_fr.bias)
    x = torch.rand(2, 3, 20, 24)
    boxes = [BBox(1, 9, 2, 7), BBox(10, 19, 12, 23)]
    with torch.no_grad():
        out = model.refine_in_boxes(x, boxes)
        for i, b in enumerate(boxes):
            inside = out[i, :, b.y0 : b.y1, b.x0 : b.x1]
            assert torch.allclose(inside, model.refine(x[i : i + 1, :, b.y0 : b.y1, b.x0 : b.x1])[0])
            outside = out[i].clone()
            outside[:, b.y0 : b.y1, b.x0 : b.x1] = -30.0
            assert torch.all(outside == -30.0)
    with pytest.raises(ValueError, match="1 boxes for a batch of 2"):
        model.refine_in_boxes(x, boxes[:1])
