"""The pelvis (anatomy version 2) and the phantom's field of view."""

import numpy as np
import pytest

from rstn_core.data.phantom import generate_phantom
from rstn_core.errors import DataError

SPACING = (4.0, 4.0, 4.0)


@pytest.fixture(scope="module")
def pelvis():
    return generate_phantom(2, spacing=SPACING, fov="abdomen-pelvis", appearance="portal-venous")


def _centre(ph, label):
    idx = np.argwhere(ph.labels == label)
    assert idx.size, f"label {label} missing"
    world = idx * np.diag(ph.affine)[:3] + ph.affine[:3, 3]
    return world.mean(axis=0)  # (x Right, y Anterior, z Superior) mm


def test_abdomen_pelvis_reaches_the_femoral_heads(pelvis):
    assert pelvis.labels.shape[2] == 100  # 400 mm at 4 mm
    assert pelvis.meta["fov"] == "abdomen-pelvis"
    for label in (21, 25, 75, 76, 77, 78):  # bladder, sacrum, femurs, hips
        assert (pelvis.labels == label).sum() > 20, label


def test_pelvic_organs_sit_where_anatomy_puts_them(pelvis):
    bladder, sacrum, pancreas = _centre(pelvis, 21), _centre(pelvis, 25), _centre(pelvis, 7)
    assert abs(bladder[0]) < 20 and bladder[1] > sacrum[1] + 40  # midline, in front of the sacrum
    assert bladder[2] < sacrum[2] < pancreas[2] - 100
    assert _centre(pelvis, 75)[0] < -50 and _centre(pelvis, 76)[0] > 50  # femur left / right (x = Right)
    assert _centre(pelvis, 77)[0] < 0 < _centre(pelvis, 78)[0]
    lumbar = np.isin(pelvis.labels, [27, 28, 29, 30, 31, 32, 33])
    assert np.argwhere(lumbar)[:, 2].min() > np.argwhere(pelvis.labels == 25)[:, 2].min()  # column ends on S1
    urine = pelvis.hu[pelvis.labels == 21]
    assert -20 < np.median(urine) < 60  # fluid, not bone or fat


def test_default_field_of_view_is_the_abdomen_and_random_is_seeded():
    assert generate_phantom(0, spacing=SPACING).labels.shape[2] == 60  # 240 mm
    drawn = [generate_phantom(s, spacing=(8.0, 8.0, 8.0), fov="random").meta["fov"] for s in range(8)]
    assert set(drawn) == {"abdomen", "abdomen-pelvis"}
    assert drawn == [generate_phantom(s, spacing=(8.0, 8.0, 8.0), fov="random").meta["fov"] for s in range(8)]


def test_version_1_is_unchanged_bit_for_bit():
    """Counts measured with the generator before version 2 existed (seed 1, 4 mm, random appearance); the demo
    bundles' first training stage ran on version 1."""
    ph = generate_phantom(1, spacing=SPACING, appearance="random", anatomy=1)
    counts = dict(zip(*np.unique(ph.labels, return_counts=True)))
    expected = {1: 1168, 2: 1466, 3: 1556, 5: 17090, 6: 5431, 7: 267, 18: 9399, 20: 8726, 52: 1049, 64: 343}
    for label, n in expected.items():
        assert counts.get(label, 0) == pytest.approx(n, rel=0.01), label
    assert 21 not in counts and 25 not in counts


@pytest.mark.parametrize("kwargs, words", [
    ({"fov": "pelvis"}, "'pelvis'"),
    ({"anatomy": 3}, "version must be one of"),
    ({"anatomy": 1, "fov": "abdomen-pelvis"}, "needs anatomy version 2"),
])
def test_bad_anatomy_or_field_of_view_is_refused_by_name(kwargs, words):
    with pytest.raises(DataError, match=words):
        generate_phantom(0, spacing=(8.0, 8.0, 8.0), **kwargs)
