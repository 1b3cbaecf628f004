"""The trainer in parts: fit() with callbacks, explicit random generators only."""

import random

import numpy as np
import torch
from rstn_training_synthetic import blob_windows

from rstn_core.config import DataConfig, StageConfig
from rstn_core.models.rstn import build_model
from rstn_core.training.callbacks import StopAfter
from rstn_core.training.fit import Callback, fit
from rstn_core.training.loop import train_view
from rstn_core.training.recipes import get_recipe


def tiny(**overrides):
    recipe = get_recipe("tiny")
    tc = recipe.train.replace(stages=(StageConfig("S", 2), StageConfig("I", 1), StageConfig("J", 2)), **overrides)
    return recipe.model.replace(dropout=0.5), tc


class Recorder(Callback):
    def __init__(self):
        self.steps, self.stage_ends = [], []

    def on_step(self, fit):
        self.steps.append((fit.stage.name, fit.state.iteration, fit.state.global_step, round(fit.loss, 6)))
        return False

    def on_stage_end(self, fit):
        self.stage_ends.append(fit.state.stage_index)


def test_fit_runs_the_stages_and_calls_back_writing_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    mc, tc = tiny()
    model = build_model(tc.method, mc, torch.Generator().manual_seed(1))
    recorder = Recorder()
    run = fit(model, blob_windows(3, h=17, w=19), tc, [recorder])
    assert run.finished and run.state.global_step == 5
    assert [s[:3] for s in recorder.steps] == [("S", 1, 1), ("S", 2, 2), ("I", 1, 3), ("J", 1, 4), ("J", 2, 5)]
    assert recorder.stage_ends == [1, 2, 3]
    assert list(tmp_path.iterdir()) == []  # checkpoints and metrics are callbacks, not the loop's business


def test_a_callback_stops_the_fit_unfinished():
    mc, tc = tiny()
    run = fit(build_model(tc.method, mc), blob_windows(3, h=17, w=19), tc, [StopAfter(3)])
    assert not run.finished and run.state.global_step == 3 and run.state.stage_index == 1


def test_training_neither_seeds_nor_reads_the_global_random_state(tmp_path):
    """Same seed, same weights, whatever the global generators hold; and they are left as they were."""
    mc, tc = tiny()
    windows = blob_windows(3, h=17, w=19)
    finals = []
    for index, global_seed in enumerate((5, 6)):
        torch.manual_seed(global_seed)
        np.random.seed(global_seed)
        random.seed(global_seed)
        before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
        model = build_model(tc.method, mc, torch.Generator().manual_seed(tc.seed))
        train_view(model, windows, view="axial", model_config=mc, data_config=DataConfig(), train_config=tc,
                   out_dir=tmp_path / str(index), progress=False)
        after = (torch.get_rng_state(), np.random.get_state()[1], random.getstate())
        assert torch.equal(before[0], after[0]) and np.array_equal(before[1], after[1]) and before[2] == after[2]
        finals.append(model.state_dict())
    assert all(torch.equal(finals[0][k], finals[1][k]) for k in finals[0])


def test_explicit_generators_give_the_same_initial_weights():
    mc, _ = tiny()
    a = build_model("rstn", mc, torch.Generator().manual_seed(3)).state_dict()
    torch.manual_seed(99)
    b = build_model("rstn", mc, torch.Generator().manual_seed(3)).state_dict()
    c = build_model("rstn", mc, torch.Generator().manual_seed(4)).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_checkpoints_written_before_the_explicit_generators_still_restore():
    """Old checkpoints hold torch's global CPU state (and Python/NumPy global states, now ignored)."""
    from rstn_core.training.checkpoint import capture_rng, restore_rng

    torch.manual_seed(7)
    old = {"python": [3, [0] * 625, None], "numpy_global": ["MT19937", [0] * 624, 0, 0, 0.0],
           "numpy_generator": np.random.default_rng(1).bit_generator.state, "torch": torch.get_rng_state()}
    rng, gen = np.random.default_rng(0), torch.Generator()
    restore_rng(old, rng, gen)
    expected = torch.rand(3)  # the global stream the old checkpoint recorded
    assert torch.equal(torch.rand(3, generator=gen), expected)
    assert rng.integers(1 << 30) == np.random.default_rng(1).integers(1 << 30)
    assert set(capture_rng(rng, gen)) == {"numpy_generator", "torch"}
