"""Domain randomisation of training windows (rstn_core.data.augment)."""

from __future__ import annotations

import numpy as np
import pytest

from rstn_core.data.augment import AugmentConfig, RandomisedWindows, gain_field, lower_resolution, randomise_window
from rstn_core.data.sampler import TrainingWindows
from rstn_core.errors import DataError
from rstn_core.types import Case, Orientation, Volume

OFF = AugmentConfig(p_class=0, p_gamma=0, p_bias=0, p_blur=0, p_noise=0, p_resolution=0)


def window(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros((3, 33, 35), dtype=np.int16)
    labels[:, 10:20, 12:24] = 7
    labels[:, 2:8, 2:8] = 5
    image = np.where(labels == 7, 0.6, np.where(labels == 5, 0.45, 0.2)).astype(np.float32)
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    return np.clip(image, 0, 1), labels


def test_all_switches_off_is_the_identity():
    image, labels = window()
    out = randomise_window(image, labels, OFF, np.random.default_rng(0))
    assert np.array_equal(out, image) and out is not image


def test_class_shift_moves_each_organ_by_its_own_offset():
    image, labels = window()
    cfg = AugmentConfig(p_class=1.0, class_shift=0.2, p_gamma=0, p_bias=0, p_blur=0, p_noise=0, p_resolution=0)
    out = randomise_window(image, labels, cfg, np.random.default_rng(3))
    shift = {k: float(np.mean(out[labels == k] - image[labels == k])) for k in (0, 5, 7)}
    # within each class the shift is one constant (texture kept), organs differ from each other
    for k in (0, 5, 7):
        assert np.allclose(out[labels == k] - image[labels == k], shift[k], atol=1e-5)
    assert abs(shift[0]) <= 0.2 / 3 + 1e-6 and max(abs(shift[5]), abs(shift[7])) <= 0.2 + 1e-6
    assert len({round(v, 4) for v in shift.values()}) == 3


def test_randomised_windows_stay_in_range_and_are_reproducible():
    image, labels = window()
    cfg = AugmentConfig(p_class=1, p_gamma=1, p_bias=1, p_blur=1, p_noise=1)
    a = randomise_window(image, labels, cfg, np.random.default_rng(5))
    b = randomise_window(image, labels, cfg, np.random.default_rng(5))
    c = randomise_window(image, labels, cfg, np.random.default_rng(6))
    assert a.shape == image.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_gain_field_is_smooth_and_bounded():
    field = gain_field((33, 35), 0.1, np.random.default_rng(0))
    assert field.shape == (33, 35)
    assert 0.9 - 1e-6 <= field.min() and field.max() <= 1.1 + 1e-6
    assert np.abs(np.diff(field, axis=0)).max() < 0.05  # no pixel-to-pixel jumps


@pytest.mark.parametrize("bad", [{"p_class": 1.5}, {"noise": -0.1}, {"class_shift": 9.0}])
def test_bad_settings_are_refused_naming_the_field(bad):
    name = next(iter(bad))
    with pytest.raises(DataError, match=name):
        AugmentConfig(**bad)


def test_randomised_training_windows_keep_labels_and_use_the_label_map():
    labels = np.zeros((15, 17, 9), dtype=np.int16)
    labels[5:10, 6:12, 2:7] = 7
    labels[0:4, 0:4, :] = 5
    hu = np.where(labels == 7, 100.0, np.where(labels == 5, 60.0, -50.0)).astype(np.float32)
    affine = np.eye(4)
    vol = Volume(hu, affine, Orientation(affine, hu.shape, np.array([[0, 1], [1, 1], [2, 1]], dtype=float)))
    case = Case("c", vol, labels == 7, labels)
    plain = TrainingWindows([case], "axial")
    with pytest.raises(DataError, match="keep_label_maps"):
        RandomisedWindows(plain, AugmentConfig())
    windows = TrainingWindows([case], "axial", keep_label_maps=True)
    randomised = RandomisedWindows(windows, AugmentConfig(p_class=1, p_gamma=0, p_bias=0, p_blur=0, p_noise=0,
                                                                 p_resolution=0))
    assert len(randomised) == len(windows) and randomised.case_ids == ["c"]
    image, label = randomised[0]
    plain_image, plain_label = windows[0]
    assert np.array_equal(label, plain_label)
    assert not np.allclose(image, plain_image)
    assert windows.label_map_window(0).shape == image.shape


def test_lower_resolution_keeps_the_shape_and_removes_fine_detail():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 1, (3, 40, 44)).astype(np.float32)  # pixel-scale detail only
    out = lower_resolution(image, 2.0)
    assert out.shape == image.shape and out.dtype == np.float32
    assert np.abs(np.diff(out, axis=2)).mean() < 0.6 * np.abs(np.diff(image, axis=2)).mean()
    flat = np.full((3, 40, 44), 0.4, dtype=np.float32)
    np.testing.assert_allclose(lower_resolution(flat, 1.7), flat, atol=1e-6)
    cfg = AugmentConfig(p_class=0, p_gamma=0, p_bias=0, p_blur=0, p_noise=0, p_resolution=1.0, resolution=1.0)
    image, labels = window()
    assert not np.array_equal(randomise_window(image, labels, cfg, np.random.default_rng(1)), image)


def test_configs_recorded_before_the_resolution_switch_load_with_it_off():
    old = {k: v for k, v in AugmentConfig().to_dict().items() if k not in ("p_resolution", "resolution")}
    assert AugmentConfig.from_dict(old).p_resolution == 0.0
    assert AugmentConfig.from_dict(AugmentConfig().to_dict()) == AugmentConfig()
