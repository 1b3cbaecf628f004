"""rstn_core.slicing and rstn_core.geometry: exact inverses on odd shapes, and the margin jitter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rstn_core import geometry, slicing
from rstn_core.types import ALL_VIEWS, BBox, View

odd = st.integers(0, 6).map(lambda n: 2 * n + 1)
shapes = st.tuples(odd, odd, odd)


def volume_of(shape, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, view=st.sampled_from(ALL_VIEWS))
def test_to_view_from_view_round_trip(shape, view):
    vol = volume_of(shape)
    stack = slicing.to_view(vol, view)
    assert stack.shape == slicing.view_shape(shape, view)
    assert stack.shape[0] == shape[view.axis]
    np.testing.assert_array_equal(slicing.from_view(stack, view), vol)


@settings(max_examples=30, deadline=None)
@given(shape=shapes, view=st.sampled_from(ALL_VIEWS))
def test_all_windows_accumulate_back_to_the_volume(shape, view):
    vol = volume_of(shape)
    stack = slicing.to_view(vol, view)
    centers = np.arange(stack.shape[0])
    windows = slicing.make_windows(stack, centers)
    assert windows.shape == (stack.shape[0], 3) + stack.shape[1:]
    np.testing.assert_array_equal(windows[:, 1], stack)  # channel 1 is the centre slice
    back, covered = slicing.accumulate_windows(windows, centers, stack.shape[0])
    assert covered.all()
    np.testing.assert_allclose(slicing.from_view(back, view), vol, rtol=0, atol=1e-6)


@settings(max_examples=30, deadline=None)
@given(num=odd, data=st.data())
def test_window_subset_covers_exactly_the_neighbourhood(num, data):
    centers = sorted(set(data.draw(st.lists(st.integers(0, num - 1), max_size=num))))
    stack = volume_of((num, 3, 5))
    back, covered = slicing.accumulate_windows(slicing.make_windows(stack, centers), centers, num)
    expected = np.zeros(num, bool)
    for c in centers:
        expected[max(c - 1, 0) : c + 2] = True
    np.testing.assert_array_equal(covered, expected)
    np.testing.assert_allclose(back[covered], stack[covered], atol=1e-6)
    assert not back[~covered].any()


def test_window_edges_repeat_the_centre():
    np.testing.assert_array_equal(slicing.window_indices([0, 2, 4], 5), [[0, 0, 1], [1, 2, 3], [3, 4, 4]])
    np.testing.assert_array_equal(slicing.window_indices([0], 1), [[0, 0, 0]])
    with pytest.raises(ValueError, match="window centres"):
        slicing.window_indices([5], 5)


def test_view_axes_follow_anatomy():
    vol = np.zeros((3, 5, 7))
    assert slicing.to_view(vol, View.AXIAL).shape == (7, 3, 5)
    assert slicing.to_view(vol, "coronal").shape == (5, 3, 7)
    assert slicing.to_view(vol, View.SAGITTAL).shape == (3, 5, 7)


def test_centers_touching():
    mask = np.zeros((9, 2, 2), bool)
    mask[4] = True
    np.testing.assert_array_equal(slicing.centers_touching(mask), [3, 4, 5])
    mask[8, 0, 0] = True
    np.testing.assert_array_equal(slicing.centers_touching(mask), [3, 4, 5, 7, 8])


# --- geometry -----------------------------------------------------------------------------------


@st.composite
def image_and_box(draw):
    h, w = draw(odd), draw(odd)
    y0 = draw(st.integers(0, h - 1))
    y1 = draw(st.integers(y0 + 1, h))
    x0 = draw(st.integers(0, w - 1))
    x1 = draw(st.integers(x0 + 1, w))
    return (h, w), BBox(y0, y1, x0, x1)


@settings(max_examples=40, deadline=None)
@given(hb=image_and_box())
def test_crop_uncrop_inverse(hb):
    (h, w), box = hb
    x = volume_of((3, h, w))
    c = geometry.crop(x, box)
    assert c.shape == (3, box.height, box.width)
    pasted = geometry.uncrop(c, box, (h, w))
    assert pasted.shape == (3, h, w)
    np.testing.assert_array_equal(geometry.crop(pasted, box), c)
    outside = np.ones((h, w), bool)
    outside[box.slices()] = False
    assert (pasted[:, outside] == geometry.BACKGROUND_LOGIT).all()


def test_uncrop_torch_matches_numpy():
    torch = pytest.importorskip("torch")
    box = BBox(1, 4, 2, 7)
    c = volume_of((2, 3, 3, 5))
    out = geometry.uncrop(torch.from_numpy(c), box, (7, 9))
    np.testing.assert_array_equal(out.numpy(), geometry.uncrop(c, box, (7, 9)))


def test_crop_box_hand_computed():
    ref = np.zeros((3, 50, 60), np.float32)
    ref[0, 20, 30] = 0.7
    ref[2, 25, 33] = 0.5
    ref[1, 45, 5] = 0.49  # below threshold
    assert geometry.tight_box(ref) == BBox(20, 26, 30, 34)
    assert geometry.crop_box(ref, margin=20) == BBox(0, 46, 10, 54)
    assert geometry.crop_box(np.zeros((3, 5, 5)), margin=20) is None


def test_draw_margins_distribution():
    k, n = 20, 20000
    rng = np.random.default_rng(123)
    draws = np.asarray([geometry.draw_margins(k, 0.5, rng) for _ in range(n)])  # (n, 4)
    fixed = (draws == k).all(axis=1)
    # P(all four equal K) = 0.5 + 0.5 / 41**4: the fixed branch half the time
    assert abs(fixed.mean() - 0.5) < 0.02
    jittered = draws[~fixed]
    assert jittered.min() == 0 and jittered.max() == 2 * k
    counts = np.stack([np.bincount(jittered[:, m], minlength=2 * k + 1) for m in range(4)])  # (4, 41)
    expected = jittered.shape[0] / (2 * k + 1)
    assert np.abs(counts - expected).max() < 0.25 * expected  # uniform on {0..2K}, each margin
    # the four margins are drawn independently
    corr = np.corrcoef(jittered.T)
    assert np.abs(corr - np.eye(4)).max() < 0.05
    assert geometry.draw_margins(k, 0.5, None) == (k, k, k, k)
    assert geometry.draw_margins(k, 0.0, rng) == (k, k, k, k)
