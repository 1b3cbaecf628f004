"""Display helpers: radiological orientation, physical geometry, windows, overlays (hand-computed)."""

from __future__ import annotations

import numpy as np
import pytest

from app import display
from rstn_core.types import BBox, View


def _volume(shape=(5, 7, 9)) -> np.ndarray:
    return np.arange(np.prod(shape), dtype=np.float32).reshape(shape)


@pytest.mark.parametrize("view, h_axis, w_axis", [("axial", 0, 1), ("coronal", 0, 2), ("sagittal", 1, 2)])
def test_display_puts_right_anterior_superior_where_radiologists_expect(view, h_axis, w_axis):
    shape = (5, 7, 9)
    vol = np.zeros(shape, dtype=np.float32)
    idx = [2, 3, 4]
    # a marker at the largest H index (patient's right / anterior) and the largest W index (anterior / superior)
    marker = list(idx)
    marker[h_axis] = shape[h_axis] - 1
    marker[w_axis] = shape[w_axis] - 1
    vol[tuple(marker)] = 1
    slice_index = marker[View.parse(view).axis]
    shown = display.display_slice(vol, view, slice_index)
    assert shown.shape == (shape[w_axis], shape[h_axis])
    # top-left corner of the screen: patient right (axial/coronal) or anterior (sagittal), and top = A or S
    assert shown[0, 0] == 1


def test_axial_display_matches_hand_layout():
    vol = _volume((2, 3, 1))  # x in {0,1}, y in {0,1,2}
    shown = display.display_slice(vol, "axial", 0)
    # rows: y from anterior (2) down to 0; cols: x from right (1) to left (0)
    expected = np.array([[vol[1, 2, 0], vol[0, 2, 0]], [vol[1, 1, 0], vol[0, 1, 0]], [vol[1, 0, 0], vol[0, 0, 0]]])
    np.testing.assert_array_equal(shown, expected)


def test_geometry_uses_physical_spacing():
    geom = display.geometry((33, 34, 35), (0.7, 0.8, 2.5), "coronal")
    assert geom.view_hw == (33, 35)
    assert geom.bounds == pytest.approx((0, 0, 33 * 0.7, 35 * 2.5))
    assert geom.aspect == pytest.approx(33 * 0.7 / (35 * 2.5))


def test_box_to_display_covers_the_same_pixels():
    geom = display.geometry((10, 12, 4), (2.0, 3.0, 1.0), "axial")  # H = 10 (x), W = 12 (y)
    box = BBox(2, 5, 1, 4)  # rows (H) 2..4, cols (W) 1..3
    x0, y0, x1, y1 = display.box_to_display(box, geom)
    assert (x0, y0, x1, y1) == pytest.approx(((10 - 5) * 2.0, 1 * 3.0, (10 - 2) * 2.0, 4 * 3.0))
    # the centre of the view pixel (h=2, w=1) maps back into the box
    h, w = display.display_to_index(x1 - 1.0, y0 + 1.5, geom)
    assert (h, w) == (2, 1)


def test_box_matches_displayed_mask():
    shape = (11, 13, 3)
    mask = np.zeros(shape, dtype=bool)
    mask[3:6, 7:10, 1] = True
    geom = display.geometry(shape, (1.0, 1.0, 1.0), "axial")
    x0, y0, x1, y1 = display.box_to_display(BBox(3, 6, 7, 10), geom)
    shown = display.display_slice(mask, "axial", 1)  # (W, H) rows from the top
    rows, cols = np.nonzero(shown)
    top = shape[1]  # display height in mm with spacing 1
    assert cols.min() == x0 and cols.max() + 1 == x1
    assert top - (rows.max() + 1) == y0 and top - rows.min() == y1


@pytest.mark.parametrize("name, expected", [("abdomen (W350 L40)", (-135.0, 215.0)),
                                            ("model (-100..240 HU)", (-100.0, 240.0))])
def test_window_presets(name, expected):
    assert display.preset_clim(name) == pytest.approx(expected)


def test_custom_window_and_errors():
    assert display.preset_clim("custom", (0.0, 100.0)) == (-50.0, 50.0)
    with pytest.raises(ValueError, match="unknown window preset"):
        display.preset_clim("nope")
    with pytest.raises(ValueError, match="positive"):
        display.window_clim(0, 0)


def test_apply_window_uint8():
    out = display.apply_window(np.array([-1000.0, -100.0, 70.0, 240.0, 3000.0]), (-100.0, 240.0))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 255, 255]


def test_error_codes_and_layer():
    pred = np.array([[1, 1, 0, 0]], dtype=bool)
    truth = np.array([[1, 0, 1, 0]], dtype=bool)
    assert display.error_codes(pred, truth).tolist() == [[1, 2, 3, 0]]
    layer = display.error_layer(pred, truth)
    assert layer[0, :3].tolist() == [1.0, 2.0, 3.0] and np.isnan(layer[0, 3])


def test_contour_is_the_inner_boundary():
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:4, 1:4] = True
    edge = display.contour(mask)
    assert edge.sum() == 8 and not edge[2, 2]


def test_worst_and_largest_slice():
    truth = np.zeros((4, 5, 6), dtype=bool)
    pred = truth.copy()
    truth[1, 1:3, 2] = True
    pred[1, 1:3, 4] = True  # 2 FN on z=2, 2 FP on z=4
    pred[2, 2, 4] = True  # one more FP on z=4
    assert display.worst_slice(pred, truth, "axial") == 4
    assert display.worst_slice(truth, truth, "axial") is None
    assert display.largest_slice(pred, "axial") == 4
    assert display.largest_slice(np.zeros_like(pred), "axial") == 3


def test_diverging_clim_is_symmetric_around_one():
    lo, hi = display.diverging_clim(np.array([0.8, 1.0, 1.5]))
    assert (lo, hi) == pytest.approx((0.5, 1.5))
    assert display.diverging_clim(np.ones(3)) == pytest.approx((0.95, 1.05))


def test_axis_labels_follow_the_view():
    assert display.axis_labels("axial") == ("patient's right ← → left (mm)", "posterior ← → anterior (mm)")
    assert display.axis_labels("coronal")[1] == "inferior ← → superior (mm)"
    assert display.axis_labels("sagittal")[0] == "anterior ← → posterior (mm)"


def test_the_app_has_no_dice_of_its_own():
    assert not hasattr(display, "dice")  # one Dice: rstn_core.evaluation.metrics.dsc
