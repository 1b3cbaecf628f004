"""rstn_core.data.sampler: centre-slice windows, smallest 2% dropped, threshold from training cases only."""

from __future__ import annotations

import numpy as np
import pytest

from rstn_core.config import DataConfig
from rstn_core.data.sampler import TrainingWindows, keep_largest
from rstn_core.errors import DataError
from rstn_core.io import canonicalise
from rstn_core.types import Case, View, Volume


def make_case(case_id: str, areas: list[int], shape=(9, 11, 0), seed=0) -> Case:
    """Axial slice k holds a target of ``areas[k]`` pixels (0 = none). Shape (9, 11, len(areas))."""
    shape = (shape[0], shape[1], len(areas))
    hu = np.random.default_rng(seed).uniform(-300, 400, size=shape).astype(np.float32)
    label = np.zeros(shape, bool)
    for k, area in enumerate(areas):
        label.reshape(-1, shape[2])[:area, k] = True  # first `area` pixels of slice k
    data, affine, orientation = canonicalise(hu, np.eye(4))
    return Case(case_id, Volume(data, affine, orientation), label=label)


def test_keep_largest_drops_the_smallest_two_percent():
    areas = np.arange(1, 101)[::-1]
    keep = keep_largest(areas, 0.02)
    assert keep.sum() == 98 and set(areas[~keep]) == {1, 2}  # areas 1 and 2 dropped, 98 kept
    assert keep_largest(areas, 0.0).all()


def test_drops_the_smallest_two_percent_of_target_slices():
    # 2 cases x 50 target slices with distinct areas 1..99 (each <= 99 pixels in a 9x11 slice)
    areas = np.arange(1, 101)
    areas[-1] = 99  # keep areas within a 99-pixel slice; 99 appears twice
    a = make_case("a", list(areas[:50]) + [0, 0, 0], seed=1)
    b = make_case("b", [0] + list(areas[50:]), seed=2)
    windows = TrainingWindows([a, b], View.AXIAL, DataConfig())
    assert windows.threshold == 3
    assert len(windows) == 98
    assert windows.areas.min() == 3
    kept_a = windows.centers[windows.centers[:, 0] == 0, 1]
    assert kept_a.min() == 2  # slices with areas 1 and 2 dropped
    assert 50 not in kept_a  # empty centre slices never sampled


def test_threshold_uses_training_cases_only():
    train = [make_case("t1", [40, 50, 60, 70] * 13, seed=3), make_case("t2", [45, 55, 65, 75] * 13, seed=4)]
    tiny_test_case = make_case("test", [1, 1, 1, 1, 1], seed=5)
    windows = TrainingWindows(train, View.AXIAL, DataConfig())
    assert windows.threshold == 40
    # Had the test case been pooled (the released code's leak) the threshold would drop to its tiny slices.
    leaked = TrainingWindows([*train, tiny_test_case], View.AXIAL, DataConfig())
    assert leaked.threshold == 1
    assert TrainingWindows(train, View.AXIAL, DataConfig()).threshold == windows.threshold


def test_items_are_windows_of_normalised_image_and_binary_label():
    case = make_case("a", [0, 5, 9, 0, 7, 0, 0], seed=6)
    windows = TrainingWindows([case], "axial", DataConfig(drop_smallest_fraction=0.0))
    assert windows.centers.tolist() == [[0, 1], [0, 2], [0, 4]]
    image, label = windows[0]
    assert image.shape == (3, 9, 11) and image.dtype == np.float32
    assert label.shape == (3, 9, 11) and label.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert set(np.unique(label)) <= {0.0, 1.0}
    assert [int(label[c].sum()) for c in range(3)] == [0, 5, 9]  # slices (0, 1, 2)
    hu = case.image.data[:, :, 2]
    np.testing.assert_allclose(image[2], (np.clip(hu, -100, 240) + 100) / 340, atol=1e-6)
    sample = windows.sample(np.random.default_rng(0))
    assert sample[0].shape == (3, 9, 11)
    with pytest.raises(IndexError):
        windows[3]


def test_other_views_and_errors():
    case = make_case("a", [0, 5, 9, 0, 7], seed=7)
    sagittal = TrainingWindows([case], View.SAGITTAL, DataConfig(drop_smallest_fraction=0.0))
    assert sagittal[0][0].shape == (3, 11, 5)
    with pytest.raises(DataError, match="contains the target"):
        TrainingWindows([make_case("e", [0, 0, 0])], View.AXIAL)
    unlabeled = Case("u", case.image)
    with pytest.raises(DataError, match="case u: a training case needs a label"):
        TrainingWindows([unlabeled], View.AXIAL)


def test_ties_at_the_smallest_area_still_drop_two_percent():
    areas = np.array([1] * 30 + list(range(2, 72)))  # 100 slices, 30 of them 1 pixel
    keep = keep_largest(areas, 0.02)
    assert keep.sum() == 98 and not keep[0] and not keep[1] and keep[2:].all()
