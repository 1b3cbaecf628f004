import numpy as np
import pytest
import torch
from rstn_training_synthetic import blob_windows

from rstn_core.config import ModelConfig
from rstn_core.geometry import crop_box
from rstn_core.models.rstn import build_model
from rstn_core.training.stages import STAGE_SPECS
from rstn_core.training.unroll import choose_boxes, unrolled_loss
from rstn_core.types import BBox


def model_with_live_scores(method="rstn", seed=0):
    """Tiny model whose zero-initialised score layers are randomised so every gradient path is open."""
    torch.manual_seed(seed)
    model = build_model(method, ModelConfig.from_preset("tiny", dropout=0.0))
    for net in (model.coarse_net, model.fine_net):
        for score in (net.score_fr, net.score_pool4, net.score_pool3):
            torch.nn.init.normal_(score.weight, std=0.5)
            torch.nn.init.constant_(score.bias, 0.3)
    if model.saliency_net is not None:  # g starts constant (last layer zero): open its path to P
        for p in model.saliency_net.parameters():
            torch.nn.init.normal_(p, mean=0.5, std=0.3)
    return model


def batch(n=2, **kw):
    items = blob_windows(n, **kw)
    x = torch.from_numpy(np.stack([i for i, _ in items]))
    y = torch.from_numpy(np.stack([lab for _, lab in items]))
    return x, y


def grad_norm(module):
    grads = [p.grad.abs().sum() for p in module.parameters() if p.grad is not None]
    return float(sum(grads)) if grads else 0.0


@pytest.mark.parametrize("stage,coarse_grad,saliency_grad", [("S", True, False), ("I", True, True), ("J", True, True)])
def test_gradient_paths_per_stage(stage, coarse_grad, saliency_grad):
    model = model_with_live_scores()
    x, y = batch()
    out = unrolled_loss(model, x, y, STAGE_SPECS[stage], 1, 4, 0.5, np.random.default_rng(0))
    out.loss.backward()
    assert (grad_norm(model.coarse_net) > 0) == coarse_grad
    assert (grad_norm(model.saliency_net) > 0) == saliency_grad
    assert grad_norm(model.fine_net) > 0
    assert set(out.terms) == {0, 1}


def test_fine_loss_reaches_coarse_trunk_through_saliency_in_j():
    """Only the fine term: its gradient must reach theta_C (joint optimisation), not only via L0."""
    model = model_with_live_scores(seed=1)
    x, y = batch()
    out = unrolled_loss(model, x, y, STAGE_SPECS["J"], 1, 4, 0.0, np.random.default_rng(0))
    out.terms[1].backward()
    assert model.coarse_net.features[0].weight.grad.abs().sum() > 0
    assert grad_norm(model.saliency_net) > 0


def test_stage_s_fine_loss_does_not_touch_coarse_or_saliency():
    model = model_with_live_scores(seed=2)
    x, y = batch()
    out = unrolled_loss(model, x, y, STAGE_SPECS["S"], 1, 4, 0.0, np.random.default_rng(0))
    out.terms[1].backward()
    assert grad_norm(model.coarse_net) == 0 and grad_norm(model.saliency_net) == 0


@pytest.mark.parametrize("unroll", [1, 2])
def test_loss_is_lambda_weighted_sum(unroll):
    model = model_with_live_scores()
    x, y = batch()
    out = unrolled_loss(model, x, y, STAGE_SPECS["I"], unroll, 4, 0.0, np.random.default_rng(0))
    lam = [1 / (2 * unroll + 1)] + [2 / (2 * unroll + 1)] * unroll
    expected = sum(l * float(out.terms[t].detach()) for t, l in enumerate(lam))
    assert float(out.loss.detach()) == pytest.approx(expected, rel=1e-6)
    assert len(out.boxes) == unroll


def test_c2f_stages_train_one_net_each():
    model = model_with_live_scores("c2f")
    x, y = batch()
    out = unrolled_loss(model, x, y, STAGE_SPECS["fine"], 1, 4, 0.5, np.random.default_rng(0))
    out.loss.backward()
    assert set(out.terms) == {1} and grad_norm(model.coarse_net) == 0 and grad_norm(model.fine_net) > 0
    model.zero_grad()
    out = unrolled_loss(model, x, y, STAGE_SPECS["coarse"], 1, 4, 0.5, np.random.default_rng(0))
    assert set(out.terms) == {0} and float(out.loss.detach()) == float(out.terms[0].detach())


def test_each_sample_gets_its_own_box():
    y = torch.zeros(2, 3, 21, 25)
    y[0, :, 2:5, 3:6] = 1
    y[1, :, 14:19, 17:22] = 1
    boxes = choose_boxes(y, y, 2, 0.0, np.random.default_rng(0))
    assert boxes == [BBox(0, 7, 1, 8), BBox(12, 21, 15, 24)]
    # stage J: an empty prediction falls back to the ground truth of that sample only
    pred = torch.zeros_like(y)
    pred[1, 1, 0:3, 0:3] = 0.9
    boxes = choose_boxes(pred, y, 2, 0.0, np.random.default_rng(0))
    assert boxes == [BBox(0, 7, 1, 8), BBox(0, 5, 0, 5)]
    # jitter draws from the generator like geometry.crop_box does
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    jittered = choose_boxes(y, y, 3, 1.0, rng_a)
    assert jittered == [crop_box(y[i].numpy(), 3, 0.5, 1.0, rng_b) for i in range(2)]


def test_unrolled_boxes_differ_per_sample_in_a_batch():
    model = model_with_live_scores()
    x, y = batch(3, h=31, w=29)
    out = unrolled_loss(model, x, y, STAGE_SPECS["I"], 1, 2, 0.0, np.random.default_rng(0))
    expected = [crop_box(y[i].numpy(), 2) for i in range(3)]
    assert out.boxes[0] == expected and len(set(expected)) == 3
