"""rstn_core.intensity: the HU window, hand-computed."""

from __future__ import annotations

import numpy as np
import pytest

from rstn_core.config import DataConfig
from rstn_core.intensity import denormalize_hu, normalize_hu


@pytest.mark.parametrize(
    "hu,expected", [(-1000, 0.0), (-100, 0.0), (70, 0.5), (240, 1.0), (3000, 1.0), (15, 115 / 340)]
)
def test_default_window(hu, expected):
    out = normalize_hu(np.asarray([hu], dtype=np.int16))
    assert out.dtype == np.float32
    assert out[0] == pytest.approx(expected, abs=1e-6)


def test_custom_window_and_inverse():
    cfg = DataConfig(hu_min=-200.0, hu_max=300.0)
    hu = np.linspace(-200, 300, 3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
    out = normalize_hu(hu, cfg)
    assert out.shape == hu.shape and 0.0 <= out.min() and out.max() <= 1.0
    np.testing.assert_allclose(denormalize_hu(out, cfg), hu, atol=1e-3)


def test_input_is_not_modified():
    hu = np.asarray([-500.0, 0.0, 500.0], dtype=np.float32)
    kept = hu.copy()
    normalize_hu(hu)
    np.testing.assert_array_equal(hu, kept)
