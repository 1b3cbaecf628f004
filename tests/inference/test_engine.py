"""The stepwise engine (Algorithm 1) driven by stub models on small odd-sized volumes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from engine_stubs import SHAPE, ConvStub, StubModel, ellipsoid, make_volume, organ_case, threshold_logits

from rstn_core.config import DataConfig, InferenceConfig
from rstn_core.errors import DataError, RstnError
from rstn_core.geometry import crop, crop_box
from rstn_core.inference.batching import group_by_box_size
from rstn_core.inference.convergence import StopReason
from rstn_core.inference.engine import RSTNEngine
from rstn_core.slicing import centers_touching, make_windows, to_view
from rstn_core.types import ALL_VIEWS, Case, View


def engine_for(models, **config) -> RSTNEngine:
    return RSTNEngine(models, DataConfig(), InferenceConfig(**config))


def three(**kwargs) -> dict[View, StubModel]:
    return {v: StubModel(**kwargs) for v in ALL_VIEWS}


def test_oracle_stub_converges_at_round_one():
    case = organ_case()
    states = list(engine_for(three(), margin=3).iterate(case))
    assert [s.round for s in states] == [0, 1]
    assert states[0].inter_round_dsc is None
    assert states[0].dsc_vs_truth == 1.0
    assert states[1].inter_round_dsc == 1.0
    assert states[1].dsc_vs_truth == 1.0
    assert states[1].stopped is StopReason.CONVERGED and states[1].stopped == "converged"
    assert states[1].fused_prob.dtype == np.float32 and states[1].fused_prob.shape == SHAPE
    assert all(p.dtype == np.float16 and p.shape == SHAPE for p in states[1].view_probs.values())


def test_empty_coarse_map_stops_cleanly():
    models = three(coarse=lambda x: torch.full_like(x, -10.0))
    engine = engine_for(models)
    states = list(engine.iterate(organ_case()))
    assert len(states) == 1
    assert states[0].stopped == "empty-coarse"
    assert not states[0].mask.any()
    assert states[0].dsc_vs_truth == 0.0
    assert all(m.windows("refine") == 0 for m in models.values())
    assert engine.run(organ_case()).stopped == "empty-coarse"


def test_empty_coarse_map_does_not_stop_the_oracle():
    """Oracle boxes come from the truth: a coarse net that finds nothing still gets its fine rounds."""
    models = three(coarse=lambda x: torch.full_like(x, -10.0))
    states = list(engine_for(models, crops_from="truth", margin=2).iterate(organ_case()))
    assert states[0].stopped is None and not states[0].mask.any()
    assert [s.round for s in states] == [0, 1, 2]
    assert states[1].dsc_vs_truth == 1.0 and states[2].stopped == "converged"
    assert all(m.windows("refine") > 0 for m in models.values())
    never = three(coarse=lambda x: torch.full_like(x, -10.0), refine=lambda x: torch.full_like(x, -10.0))
    last = engine_for(never, crops_from="truth", max_rounds=2).run(organ_case())
    # two empty masks in a row agree (inter-round DSC 1, as the release counted it): converged, empty
    assert last.round == 1 and last.stopped == "converged" and not last.mask.any()


def test_oscillating_stub_stops_at_max_rounds():
    hu = np.full(SHAPE, 240.0, dtype=np.float32)
    hu[0, 0, 0] = -100.0  # not an empty CT

    def square(x):  # the same square in every slice of every window
        out = torch.full_like(x, -10.0)
        out[..., 5:11, 5:11] = 10.0
        return out

    def invert(x_crop):  # x = 1 inside the organ window, so x * g(P) = P: predict the complement
        return torch.where(x_crop < 0.5, 10.0, -10.0)

    models = {View.AXIAL: StubModel(coarse=square, refine=invert, saliency=lambda p: p)}
    states = list(engine_for(models, max_rounds=4, margin=2).iterate(Case("osc", make_volume(hu))))
    assert [s.round for s in states] == [0, 1, 2, 3, 4]
    assert states[-1].stopped == "max-rounds"
    assert all(s.stopped is None for s in states[:-1])
    assert all(s.inter_round_dsc < 0.99 for s in states[1:])
    assert all(s.dsc_vs_truth is None for s in states)


def test_fine_windows_touch_and_crop_from_the_fused_previous_mask():
    organ = ellipsoid(centre=(10, 11, 6), radii=(4, 5, 2))  # axial slices 4..8
    extra = ellipsoid(centre=(10, 11, 15), radii=(3, 3, 1))  # axial slices 14..16
    hu = np.random.default_rng(1).uniform(-100, 100, size=SHAPE).astype(np.float32)
    hu[organ] = 200.0
    hu[extra] = 150.0  # normalised 0.735: only the axial coarse stub calls it organ
    models = three()
    models[View.AXIAL] = StubModel(coarse=lambda x: torch.where(x > 0.7, 10.0, -10.0))
    engine = engine_for(models, margin=2)
    case = Case("fused", make_volume(hu), organ)
    s0 = engine.start(case)
    assert np.array_equal(s0.mask, organ)  # 1 of 3 views is outvoted by the mean (1/3 < 0.5)
    assert to_view(s0.view_probs[View.AXIAL], View.AXIAL)[15].max() > 0.99
    s1 = engine.step(case, s0)
    for view in ALL_VIEWS:
        ref = to_view(organ, view)
        expected = {int(c): crop_box(make_windows(ref, [c])[0], 2) for c in centers_touching(ref)}
        assert s1.boxes[view] == expected
        assert models[view].windows("refine") == len(expected) < ref.shape[0]
    assert sorted(s1.boxes[View.AXIAL]) == [3, 4, 5, 6, 7, 8, 9]
    crops = [tuple(t.shape[-2:]) for t in models[View.AXIAL].calls["refine"] for _ in range(t.shape[0])]
    sizes = sorted((b.height, b.width) for b in s1.boxes[View.AXIAL].values())
    assert sorted(crops) == sizes
    assert s1.stopped == "converged"


def test_round_zero_runs_every_window_in_batches():
    models = three()
    engine_for(models, batch_size=4).start(organ_case())
    for view, model in models.items():
        sizes = [t.shape[0] for t in model.calls["coarse"]]
        assert sum(sizes) == SHAPE[view.axis] and max(sizes) == 4


def test_saliency_view_equals_what_the_step_used():
    models = {v: ConvStub(seed=i) for i, v in enumerate(ALL_VIEWS)}
    captured: dict[View, list[torch.Tensor]] = {v: [] for v in ALL_VIEWS}
    for view, model in models.items():
        model.refine = (lambda m, v: lambda x: (captured[v].append(x.clone()), type(m).refine(m, x))[1])(model, view)
    engine = engine_for(models, margin=3, batch_size=3, workers=1)  # one call at a time: captured in batch order
    case = organ_case()
    s0 = engine.start(case)
    s1 = engine.step(case, s0)
    for view in ALL_VIEWS:
        seen = [t[i] for t in captured[view] for i in range(t.shape[0])]
        order = [c for batch in group_by_box_size(s1.boxes[view], 3) for c in batch]
        assert len(seen) == len(order) > 0
        for centre, got in zip(order, seen):
            sv = engine.saliency_view(case, s0, view, centre)
            assert sv.box == s1.boxes[view][centre]
            assert not np.allclose(sv.weights, 1.0)
            np.testing.assert_allclose(sv.transformed, sv.image * sv.weights, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(crop(sv.transformed, sv.box), got.numpy(), rtol=1e-5, atol=1e-6)


def test_batching_gives_the_same_result_as_batch_one():
    case = organ_case(seed=3)
    results = []
    for batch_size in (1, 5):
        models = {v: ConvStub(seed=i) for i, v in enumerate(ALL_VIEWS)}
        results.append(list(engine_for(models, batch_size=batch_size, max_rounds=2, margin=3).iterate(case)))
    assert len(results[0]) == len(results[1]) >= 2
    for a, b in zip(*results):
        np.testing.assert_allclose(a.fused_prob, b.fused_prob, atol=1e-5)
        assert np.array_equal(a.mask, b.mask)
        assert a.boxes == b.boxes


@pytest.mark.parametrize("workers", [2, 3])
def test_calls_side_by_side_give_the_same_rounds_as_one_at_a_time(workers):
    case = organ_case(seed=5)
    models = {v: ConvStub(seed=i) for i, v in enumerate(ALL_VIEWS)}
    one = list(engine_for(models, batch_size=2, max_rounds=3, margin=3, workers=1).iterate(case))
    engine = engine_for(models, batch_size=2, max_rounds=3, margin=3, workers=workers)
    assert engine.parallelism.workers == workers
    many = list(engine.iterate(case))
    assert len(one) == len(many) >= 3
    for a, b in zip(one, many):
        np.testing.assert_allclose(a.fused_prob, b.fused_prob, atol=1e-6)
        assert np.array_equal(a.mask, b.mask) and a.boxes == b.boxes
        for view in ALL_VIEWS:
            np.testing.assert_allclose(a.view_probs[view], b.view_probs[view], atol=1e-3)  # stored as float16


def test_c2f_models_skip_the_saliency_and_crop_the_raw_image():
    models = three(uses_saliency=False)
    engine = engine_for(models, margin=2)
    case = organ_case()
    s1 = engine.step(case, engine.start(case))
    assert s1.inter_round_dsc == 1.0
    model = models[View.AXIAL]
    assert model.windows("saliency") == 0 and model.windows("refine") > 0
    sv = engine.saliency_view(case, s1, View.AXIAL, 9)
    np.testing.assert_array_equal(sv.weights, 1.0)
    np.testing.assert_array_equal(sv.transformed, sv.image)


def test_oracle_mode_crops_from_the_ground_truth():
    shifted = np.roll(ellipsoid(), 3, axis=0)
    models = three(coarse=lambda x: threshold_logits(x))
    case = organ_case()
    wrong = Case("wrong", case.image, shifted)  # the "truth" differs from what the image shows
    engine = engine_for(models, crops_from="truth", margin=2)
    s1 = engine.step(wrong, engine.start(wrong))
    ref = to_view(shifted, View.AXIAL)
    assert s1.boxes[View.AXIAL] == {int(c): crop_box(make_windows(ref, [c])[0], 2) for c in centers_touching(ref)}
    with pytest.raises(RstnError, match="no label"):
        engine.start(organ_case(with_label=False))


def test_a_single_view_is_enough():
    models = {View.AXIAL: StubModel()}
    state = engine_for(models, margin=2).run(organ_case())
    assert state.stopped == "converged" and state.dsc_vs_truth == 1.0
    assert list(state.view_probs) == [View.AXIAL]


def test_saliency_source_view_reads_the_views_own_probability():
    models = three(saliency=lambda p: p)
    engine = engine_for(models, saliency_source="view", margin=2)
    case = organ_case()
    s0 = engine.start(case)
    sv = engine.saliency_view(case, s0, View.CORONAL, 11)
    expected = make_windows(to_view(s0.view_probs[View.CORONAL].astype(np.float32), View.CORONAL), [11])[0]
    np.testing.assert_array_equal(sv.weights, expected)


@pytest.mark.parametrize(
    "hu, message",
    [(np.zeros((2, 23, 19)), "smaller than a 3-slice window"), (np.full(SHAPE, -1000.0), "empty")],
)
def test_bad_cts_are_refused_with_their_values(hu, message):
    with pytest.raises(DataError, match=message):
        engine_for(three()).start(Case("bad", make_volume(hu.astype(np.float32))))


def test_models_must_agree_on_the_method():
    with pytest.raises(RstnError, match="uses_saliency"):
        RSTNEngine({View.AXIAL: StubModel(), View.CORONAL: StubModel(uses_saliency=False)}, DataConfig())
    with pytest.raises(RstnError, match="at least one view"):
        RSTNEngine({}, DataConfig())


@pytest.mark.parametrize("method, fusion", [("rstn", "mean"), ("c2f", "vote")])
def test_from_bundle_uses_the_bundle_models_and_method_defaults(method, fusion):
    from rstn_core.config import ModelConfig
    from rstn_core.models.bundle import ModelBundle
    from rstn_core.models.rstn import build_model

    config = ModelConfig.from_preset("tiny")
    bundle = ModelBundle(method, config, DataConfig(target_labels=(7,)), {View.AXIAL: build_model(method, config)})
    engine = RSTNEngine.from_bundle(bundle)
    assert engine.views == (View.AXIAL,) and engine.config.fusion == fusion
    assert engine.uses_saliency == (method == "rstn") and engine.data_config.target_labels == (7,)
    assert not bundle.models[View.AXIAL].training
    state = engine.start(organ_case())
    assert state.fused_prob.shape == SHAPE and state.round == 0
