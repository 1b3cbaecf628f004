"""Contrast phases, fatty infiltration and atrophy of the phantom gland (rstn_core.data.phantom_appearance)."""

from __future__ import annotations

import numpy as np
import pytest

from rstn_core.data.phantom import PANCREAS_ID, generate_phantom
from rstn_core.data.phantom_appearance import PHASES, Appearance
from rstn_core.errors import DataError

SHAPE = (64, 56, 40)
SPACING = (6.0, 6.0, 6.0)


@pytest.fixture(scope="module")
def phases():
    return {p: generate_phantom(3, shape=SHAPE, spacing=SPACING, appearance=p) for p in PHASES}


def median(ph, label):
    return float(np.median(ph.hu[ph.labels == label]))


def test_the_anatomy_is_the_same_in_every_phase(phases):
    first = phases["portal-venous"].labels
    assert all(np.array_equal(ph.labels, first) for ph in phases.values())
    default = generate_phantom(3, shape=SHAPE, spacing=SPACING)
    assert np.array_equal(default.hu, phases["portal-venous"].hu)  # None = the phantoms of earlier versions


def test_phases_order_the_aorta_as_published(phases):
    aorta = {p: median(ph, 52) for p, ph in phases.items()}
    assert aorta["non-contrast"] < 60
    assert aorta["non-contrast"] < aorta["delayed"] < aorta["portal-venous"] < aorta["arterial"]
    assert median(phases["non-contrast"], 5) < median(phases["portal-venous"], 5)  # liver


def test_fatty_infiltration_lowers_the_gland_towards_fat():
    lean = generate_phantom(3, shape=SHAPE, spacing=SPACING, appearance=Appearance("non-contrast", 0.0))
    fatty = generate_phantom(3, shape=SHAPE, spacing=SPACING, appearance=Appearance("non-contrast", 0.5))
    assert np.array_equal(lean.labels, fatty.labels)
    assert median(fatty, PANCREAS_ID) < median(lean, PANCREAS_ID) - 25
    assert fatty.meta["appearance"] == {"phase": "non-contrast", "fat_fraction": 0.5, "atrophy": 1.0}


def test_atrophy_shrinks_the_gland():
    normal = generate_phantom(4, appearance=Appearance("portal-venous", 0.0, 1.0))
    small = generate_phantom(4, appearance=Appearance("portal-venous", 0.0, 0.75))
    assert (small.labels == PANCREAS_ID).sum() < 0.8 * (normal.labels == PANCREAS_ID).sum()


def test_random_appearance_is_seeded_and_covers_the_phases():
    draws = [Appearance.draw(s) for s in range(40)]
    assert Appearance.draw(7) == Appearance.draw(7)
    assert {d.phase for d in draws} == set(PHASES)
    assert any(d.fat_fraction > 0.3 for d in draws) and any(d.fat_fraction < 0.1 for d in draws)


@pytest.mark.parametrize("kwargs, field", [({"phase": "venous"}, "phase"), ({"fat_fraction": 1.5}, "fat_fraction"),
                                           ({"atrophy": 0.1}, "atrophy")])
def test_bad_appearance_is_refused_naming_the_value(kwargs, field):
    with pytest.raises(DataError, match=field):
        Appearance(**kwargs)
