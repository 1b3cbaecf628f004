"""What the page and `rstn predict` say a bundle was trained on."""

from pathlib import Path

from rstn_core.data.phantom import DEMO_ANATOMY
from rstn_core.inference.summary import trained_on
from rstn_core.models.bundle import load_bundle

DEMO = Path(__file__).resolve().parents[2] / "rstn_core" / "demo"


def test_phantom_training_names_the_set_and_its_anatomy_version():
    assert trained_on({"phantom_n": 24, "phantom_seed": 0, "phantom_anatomy": 2}) == \
        "24 synthetic phantoms (seed 0, anatomy version 2)"
    assert trained_on({"phantom_n": 24}) == "24 synthetic phantoms (seed ?)"
    assert trained_on({"dataset": "NIH Pancreas-CT", "phantom_n": 24}) == "NIH Pancreas-CT"
    assert trained_on({}) is None


def test_built_in_bundles_say_they_were_tuned_on_the_demo_cases_anatomy():
    """The app's demo case is drawn with DEMO_ANATOMY; the built-in bundles must record the same version."""
    for method in ("rstn", "c2f"):
        meta = load_bundle(DEMO / f"{method}.rstn").meta
        assert meta["phantom_anatomy"] == DEMO_ANATOMY
        assert f"anatomy version {DEMO_ANATOMY}" in trained_on(meta)


def test_an_engine_from_a_bundle_says_what_it_was_trained_on_and_keeps_it_across_configs():
    from rstn_core.inference.engine import RSTNEngine

    engine = RSTNEngine.from_bundle(load_bundle(DEMO / "rstn.rstn"))
    assert engine.trained_on == f"24 synthetic phantoms (seed 0, anatomy version {DEMO_ANATOMY})"
    assert engine.with_config(max_rounds=2).trained_on == engine.trained_on


def test_the_ending_counts_fine_rounds_as_max_rounds_does():
    """A run to max_rounds = 10 reads '10 fine rounds', not '11 rounds'."""
    from types import SimpleNamespace

    from rstn_core.inference.summary import ending

    rounds = [SimpleNamespace(round=r, dsc_vs_truth=0.5, dsc_grid="input", stopped=None) for r in range(11)]
    rounds[-1].stopped = "max-rounds"
    assert ending(rounds).startswith("round 0 + 10 fine rounds, stopped (max-rounds)")
    assert ending(rounds[:1]).startswith("round 0 only, not stopped yet")
    assert ending(rounds[:2]).startswith("round 0 + 1 fine round, not stopped")
    assert ending([]) == "no rounds yet"
