import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from rstn_training_synthetic import blob_windows

from rstn_core.config import DataConfig, StageConfig
from rstn_core.errors import CheckpointError
from rstn_core.models.rstn import build_model
from rstn_core.training.checkpoint import LAST_CHECKPOINT, load_checkpoint
from rstn_core.training.loop import train_view
from rstn_core.training.metrics_log import read_metrics
from rstn_core.training.recipes import get_recipe, select_stages, with_iterations

ROOT = Path(__file__).resolve().parents[2]


def tiny_setup(method="rstn", optimizer="adam", **train_overrides):
    recipe = get_recipe("tiny", method)
    tc = recipe.train.replace(optimizer=optimizer, batch_size=2, checkpoint_every=2, log_every=1,
                              jitter_prob=0.5, **train_overrides)
    if method == "rstn":
        tc = tc.replace(stages=(StageConfig("S", 2), StageConfig("I", 2), StageConfig("J", 3, lr_halve_every=1)))
    return recipe.model.replace(dropout=0.5), tc


def run(tmp, windows, mc, tc, **kw):
    torch.manual_seed(11)
    model = build_model(tc.method, mc)
    return train_view(model, windows, view="axial", model_config=mc, data_config=DataConfig(), train_config=tc,
                      out_dir=tmp, progress=False, **kw)


def assert_same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("method,optimizer,crash_at", [("rstn", "sgd", 3), ("rstn", "adam", 4), ("c2f", "sgd", 5)])
def test_resume_is_bit_identical(tmp_path, method, optimizer, crash_at):
    windows = blob_windows(5, h=19, w=21)
    mc, tc = tiny_setup(method, optimizer, lr=1e-2)
    full = run(tmp_path / "full", windows, mc, tc)
    assert full.finished
    part = run(tmp_path / "part", windows, mc, tc, stop_after=crash_at)
    assert not part.finished
    # the "crash" happened after step crash_at; the last checkpoint is at step crash_at rounded down to 2
    ckpt = load_checkpoint(tmp_path / "part" / LAST_CHECKPOINT)
    assert ckpt["train_state"].global_step == crash_at - crash_at % 2
    resumed = run(tmp_path / "part", windows, mc, tc, resume=tmp_path / "part" / LAST_CHECKPOINT)
    assert resumed.finished and resumed.state.global_step == full.state.global_step
    assert_same_state(full.model, resumed.model)
    steps = [r["step"] for r in read_metrics(tmp_path / "part" / "metrics.jsonl")]
    assert steps == list(range(1, full.state.global_step + 1))
    assert (tmp_path / "full" / "curves.png").stat().st_size > 0


def test_checkpoint_contents(tmp_path):
    windows = blob_windows(3, h=17, w=19)
    mc, tc = tiny_setup()
    run(tmp_path, windows, mc, tc, stop_after=2)
    ckpt = load_checkpoint(tmp_path / LAST_CHECKPOINT)
    assert ckpt["format"] == "rstn-checkpoint" and ckpt["code_version"]
    assert ckpt["configs"]["train_config"] == tc.to_dict() and ckpt["configs"]["model_config"] == mc.to_dict()
    assert ckpt["train_state"].stage_index == 0 and ckpt["train_state"].iteration == 2
    assert isinstance(ckpt["rng"]["torch"], torch.Tensor) and ckpt["rng"]["torch"].dtype == torch.uint8
    assert isinstance(ckpt["rng"]["numpy_generator"]["state"]["state"], int)


def test_resume_refuses_other_settings(tmp_path):
    windows = blob_windows(3, h=17, w=19)
    mc, tc = tiny_setup()
    run(tmp_path, windows, mc, tc, stop_after=2)
    with pytest.raises(CheckpointError, match=r"train_config differs .*'lr'"):
        run(tmp_path, windows, mc, tc.replace(lr=0.5), resume=tmp_path / LAST_CHECKPOINT)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_checkpoint_is_refused_without_running(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.ckpt"
    with open(path, "wb") as f:
        pickle.dump({"format": "rstn-checkpoint", "format_version": 1, "payload": _Evil(marker)}, f)
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        load_checkpoint(path)
    assert not marker.exists()
    torch.save({"model": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not an RSTN Studio training checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")


def test_invalid_configs_are_refused_clearly(tmp_path):
    mc, tc = tiny_setup()
    with pytest.raises(ValueError, match=r"stages \['coarse'\] do not belong to method 'rstn'"):
        run(tmp_path, blob_windows(2), mc, tc.replace(stages=(StageConfig("coarse", 1),)))
    with pytest.raises(ValueError, match="order S, I, J"):
        run(tmp_path, blob_windows(2), mc, tc.replace(stages=(StageConfig("J", 1), StageConfig("S", 1))))
    with pytest.raises(ValueError, match="model is 'c2f'"):
        train_view(build_model("c2f", mc), blob_windows(2), view="axial", model_config=mc,
                   data_config=DataConfig(), train_config=tc, out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"no stage named \['X'\]"):
        with_iterations(tc, {"X": 3})
    with pytest.raises(ValueError, match=r"unknown stages \['Q'\]"):
        select_stages(tc, ["Q"])
    with pytest.raises(ValueError, match="unroll"):
        tc.replace(unroll=0)
    with pytest.raises(ValueError, match="unknown recipe 'huge'"):
        get_recipe("huge")


def test_convergence_check_restarts_stage_s(tmp_path, caplog):
    mc, tc = tiny_setup(convergence_check=True, max_restarts=2)
    tc = tc.replace(stages=(StageConfig("S", 2),))
    with caplog.at_level("WARNING"):
        result = run(tmp_path, blob_windows(3, h=17, w=19), mc, tc)
    assert result.state.restarts == 2 and result.converged_s is False  # a 2-step S never converges
    assert sum("restarting S" in r.message for r in caplog.records) == 2


@pytest.mark.slow
def test_resume_after_kill_9(tmp_path):
    """A real SIGKILL in the middle of training; resuming gives the uninterrupted weights."""
    script = textwrap.dedent(f"""
        import os, signal, sys, torch
        sys.path.insert(0, {str(ROOT / 'tests' / 'training')!r})
        torch.set_num_threads(1)
        from test_checkpoint_resume import tiny_setup, run
        from rstn_training_synthetic import blob_windows
        from rstn_core.training import callbacks
        mc, tc = tiny_setup("rstn", "sgd", lr=1e-2)
        original = callbacks.save_checkpoint
        def save_then_die(path, **kw):
            original(path, **kw)
            if kw["train_state"].global_step == 4:
                os.kill(os.getpid(), signal.SIGKILL)
        callbacks.save_checkpoint = save_then_die
        run({str(tmp_path / 'killed')!r}, blob_windows(5, h=19, w=21), mc, tc)
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr
    windows = blob_windows(5, h=19, w=21)
    mc, tc = tiny_setup("rstn", "sgd", lr=1e-2)
    resumed = run(tmp_path / "killed", windows, mc, tc, resume=tmp_path / "killed" / LAST_CHECKPOINT)
    full = run(tmp_path / "full", windows, mc, tc)
    assert_same_state(full.model, resumed.model)
