"""Fusion (mean vs majority vote), organ merging, post-processing and window batching."""

from __future__ import annotations

import numpy as np
import pytest

from rstn_core.inference.batching import WindowAccumulator, chunks, group_by_box_size
from rstn_core.inference.fusion import fuse_views, merge_organs
from rstn_core.inference.postprocess import keep_large_components
from rstn_core.slicing import accumulate_windows
from rstn_core.types import BBox

# three views, three voxels (hand-computed):
#   voxel 0: 0.9, 0.4, 0.4 -> mean 0.5667 (fg), votes 1/3 (bg)
#   voxel 1: 0.6, 0.6, 0.0 -> mean 0.4    (bg), votes 2/3 (fg)
#   voxel 2: 0.5, 0.5, 0.5 -> mean 0.5    (fg: >= 0.5), votes 3/3 (fg)
VIEWS = [np.array([0.9, 0.6, 0.5]), np.array([0.4, 0.6, 0.5]), np.array([0.4, 0.0, 0.5])]


@pytest.mark.parametrize("method, expected", [("mean", [True, False, True]), ("vote", [False, True, True])])
def test_mean_and_vote_on_hand_made_maps(method, expected):
    probs = [v.reshape(3, 1, 1) for v in VIEWS]
    fused, mask = fuse_views(probs, method)
    np.testing.assert_allclose(fused.ravel(), [1.7 / 3, 0.4, 0.5], rtol=1e-6)
    assert mask.ravel().tolist() == expected


def test_vote_with_two_views_needs_both():
    fused, mask = fuse_views([np.array([[[0.9, 0.9]]]), np.array([[[0.1, 0.8]]])], "vote")
    assert mask.ravel().tolist() == [False, True]


def test_merge_organs_gives_shared_voxels_to_the_most_confident():
    p1 = np.array([[[0.9, 0.6, 0.7, 0.0]]])
    p2 = np.array([[[0.0, 0.8, 0.7, 0.2]]])
    labels = merge_organs({7: p1, 3: p2}, {7: p1 >= 0.5, 3: p2 >= 0.5})
    assert labels.ravel().tolist() == [7, 3, 3, 0]  # tie at 0.7 -> smaller id


def test_postprocess_keeps_components_at_least_half_the_largest():
    mask = np.zeros((9, 9, 9), dtype=bool)
    mask[0, 0, 0:8] = True  # 8 voxels: largest
    mask[2, 0, 0:4] = True  # 4 voxels: exactly half -> kept
    mask[4, 0, 0:3] = True  # 3 voxels -> dropped
    mask[6, 6, 6] = True  # 1 voxel -> dropped
    mask[8, 8, 0:4] = True  # 4 voxels -> kept
    mask[7, 7, 0] = True  # diagonal to the previous one: its own component (6-connectivity) -> dropped
    out = keep_large_components(mask)
    assert out.sum() == 16
    assert out[0, 0, 0:8].all() and out[2, 0, 0:4].all() and out[8, 8, 0:4].all()
    assert not out[4].any() and not out[6, 6, 6] and not out[7, 7, 0]
    assert not keep_large_components(np.zeros((3, 3, 3), bool)).any()


def test_accumulator_matches_accumulate_windows():
    rng = np.random.default_rng(0)
    outputs = rng.random((7, 3, 5, 4)).astype(np.float32)
    centres = [0, 1, 2, 4, 5, 2, 3]  # slice 7 is covered by no window
    acc = WindowAccumulator(8, 5, 4)
    for piece in chunks(list(range(7)), 3):
        acc.add(outputs[piece], [centres[i] for i in piece])
    got, covered = acc.result()
    want, want_covered = accumulate_windows(outputs, centres, 8)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.array_equal(covered, want_covered) and not covered[7]


def test_accumulator_pastes_inside_boxes_and_counts_empty_windows():
    acc = WindowAccumulator(3, 4, 4)
    acc.add(np.ones((1, 3, 2, 2), np.float32), [1], [BBox(1, 3, 0, 2)])
    acc.mark([0])  # window 0 covers slices 0, 0, 1 with zeros
    stack, covered = acc.result()
    assert covered.all()
    assert stack[2, 1:3, 0:2].tolist() == [[1, 1], [1, 1]] and stack[2].sum() == 4
    assert stack[1, 1, 0] == pytest.approx(1 / 2)  # window 1 (1.0) and window 0 (0.0)
    assert stack[0, 1, 0] == pytest.approx(1 / 3)  # windows 0 (twice, 0.0) and 1 (1.0)


def test_group_by_box_size_batches_equal_sizes_only():
    boxes = {0: BBox(0, 4, 0, 4), 1: BBox(2, 6, 1, 5), 2: BBox(0, 5, 0, 4), 3: None, 4: BBox(1, 5, 1, 5)}
    assert group_by_box_size(boxes, 2) == [[0, 1], [4], [2]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_postprocess_matches_labelling_the_whole_volume(seed):
    from scipy import ndimage

    mask = np.zeros((17, 19, 13), bool)
    mask[3:14, 4:15, 2:11] = np.random.default_rng(seed).random((11, 11, 9)) > 0.6
    labels, count = ndimage.label(mask)
    sizes = np.bincount(labels.ravel())
    expected = np.isin(labels, [i for i in range(1, count + 1) if sizes[i] >= 0.5 * sizes[1:].max()])
    assert np.array_equal(keep_large_components(mask), expected)


def test_fast_float16_cast_rounds_exactly_as_numpy():
    from rstn_core.inference.state import cast

    rng = np.random.default_rng(0)
    values = np.concatenate([rng.random(10_000, dtype=np.float32), rng.normal(0, 1e4, 1000).astype(np.float32),
                             np.array([0.0, 1.0, 65504.0, 70000.0, 1e-8, 6e-5, -0.0, 0.5 + 2**-12], np.float32)])
    volume = np.moveaxis(np.resize(values, (20, 30, 19)), 0, 2)  # strided, as the engine's view maps
    fast = cast(volume, np.float16)
    assert fast.dtype == np.float16 and fast.shape == volume.shape
    with np.errstate(over="ignore"):  # 70000 overflows to inf in both
        expected = volume.astype(np.float16)
    np.testing.assert_array_equal(fast.view(np.uint16), expected.view(np.uint16))
    assert cast(volume, np.float32) is not volume and cast(volume, np.float32).dtype == np.float32


# ------------------------------------------------------------------ fusion per round (issue 13, item 1)
def test_round_fusion_and_the_methods_releases():
    from rstn_core.inference.fusion import METHOD_FUSION, round_fusion

    assert METHOD_FUSION == {"rstn": ("mean", "mean"), "c2f": ("vote", "mean")}
    assert [round_fusion(t, "vote", "mean") for t in (0, 1, 5)] == ["vote", "mean", "mean"]
    with pytest.raises(ValueError, match="-1"):
        round_fusion(-1, "mean", "mean")


def _c2f_engine(**config):
    """Three C2F stub views whose fine nets say 0.9 / 0.4 / 0.4 everywhere in their crops:
    the mean (0.567) keeps the organ, a majority vote (1 of 3) drops it."""
    from types import SimpleNamespace

    import torch
    from engine_stubs import StubModel

    from rstn_core.config import DataConfig, InferenceConfig
    from rstn_core.inference.engine import RSTNEngine

    def constant(p):
        logit = float(np.log(p / (1 - p)))
        return lambda x: torch.full_like(x, logit)

    models = {v: StubModel(refine=constant(p), uses_saliency=False)
              for v, p in zip(("axial", "coronal", "sagittal"), (0.9, 0.4, 0.4))}
    bundle = SimpleNamespace(method="c2f", models=models, data_config=DataConfig())
    return RSTNEngine.from_bundle(bundle, InferenceConfig(**config) if config else None)


def test_c2f_votes_at_round_0_and_thresholds_the_mean_after():
    from engine_stubs import organ_case

    engine = _c2f_engine()
    assert (engine.config.fusion, engine.config.fine_fusion) == ("vote", "mean")
    case = organ_case()
    state = engine.start(case)
    assert state.mask.any()  # all three coarse stubs agree on the organ
    state = engine.step(case, state)
    assert state.mask[case.label].all()  # mean 0.567 >= 0.5 wherever all three views ran
    # the old behaviour (a vote in every round) loses the organ at round 1
    old = _c2f_engine(fusion="vote", fine_fusion="vote")
    assert not old.step(case, old.start(case)).mask.any()


def test_fine_fusion_is_validated():
    from rstn_core.config import InferenceConfig

    with pytest.raises(ValueError, match="fine_fusion must be 'mean' or 'vote', got 'max'"):
        InferenceConfig(fine_fusion="max")
