"""`rstn demo-train` end to end with one iteration per stage (the real run is documented in rstn_core/demo)."""

import json

import pytest

from rstn_core.cli import main
from rstn_core.models.bundle import load_bundle
from rstn_core.types import View


@pytest.mark.slow
def test_demo_train_writes_half_precision_bundles_and_records(tmp_path):
    out = tmp_path / "demo"
    args = ["demo-train", "--work", str(tmp_path / "work"), "--out", str(out), "--n", "4", "--view", "axial",
            "--iterations", "S=1,I=1,J=1,coarse=1,fine=1", "--no-progress"]
    assert main(args) == 0
    record = json.loads((out / "demo.json").read_text())
    assert set(record) == {"rstn", "c2f"}
    for method in ("rstn", "c2f"):
        bundle = load_bundle(out / f"{method}.rstn")
        assert bundle.method == method and bundle.views == (View.AXIAL,)
        assert bundle.meta["demo"] is True and bundle.model_config.preset == "cpu-small"
        assert (out / f"{method}_axial_curves.png").is_file()
        assert next(iter(bundle.models[View.AXIAL].parameters())).dtype.is_floating_point
    # stored as float16: about half the size of the float32 weights
    n_params = sum(p.numel() for p in load_bundle(out / "rstn.rstn").models[View.AXIAL].parameters())
    assert (out / "rstn.rstn").stat().st_size < 3 * n_params


def test_demo_args_give_the_methods_to_train(tmp_path):
    import argparse

    from rstn_core.commands import demo
    from rstn_core.types import Method

    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    args = parser.parse_args(["--work", str(tmp_path / "w"), "--out", str(tmp_path / "o"), "--methods", "C2F,rstn"])
    assert demo.check_demo_args(args) == [Method.C2F, Method.RSTN]
