"""CUDA paths: the engine under float16 autocast and AMP training. Skipped without a CUDA device.

CI and these CPU machines have none, so these run only where a GPU is present (``pytest tests/gpu``).
What a user relies on: the GPU gives the same segmentation as the CPU (mixed precision may move a few
border voxels, not the organ), and a model trained on the GPU loads and runs on the CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rstn_core.config import DataConfig
from rstn_core.data.phantom import DEMO_ANATOMY, generate_phantom
from rstn_core.evaluation.metrics import dsc
from rstn_core.inference.engine import RSTNEngine
from rstn_core.models.rstn import build_model
from rstn_core.training.loop import train_view
from rstn_core.training.metrics_log import read_metrics
from rstn_core.types import Case, Orientation, Volume

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
DEMO = Path(__file__).resolve().parents[2] / "rstn_core" / "demo" / "rstn.rstn"


# phantom_000 of `rstn phantoms --n 24 --seed 0`: held out of the demo model's training (fold 0),
# on which the demo RSTN finds the pancreas on the CPU
HELD_OUT_SEED = 2968811710


def phantom_case(seed: int = HELD_OUT_SEED) -> Case:
    p = generate_phantom(seed, anatomy=DEMO_ANATOMY)  # the anatomy the demo bundles were trained on
    ornt = np.array([[0, 1], [1, 1], [2, 1]], dtype=float)
    volume = Volume(p.hu.astype(np.float32), p.affine, Orientation(p.affine, tuple(p.hu.shape), ornt), "phantom")
    return Case(f"phantom-{seed}", volume, p.labels == 7)


def test_engine_on_cuda_matches_cpu():
    from rstn_core.models.bundle import load_bundle

    case = phantom_case()
    cpu = RSTNEngine.from_bundle(load_bundle(DEMO)).with_config(max_rounds=3)
    gpu = RSTNEngine.from_bundle(load_bundle(DEMO), device="cuda").with_config(max_rounds=3)
    a, b = cpu.run(case), gpu.run(case)
    assert a.mask.any(), "the demo model should find the phantom's pancreas on the CPU"
    assert dsc(a.mask, b.mask) >= 0.98
    assert abs(a.round - b.round) <= 1


def test_amp_training_on_cuda_learns_and_loads_on_cpu(tmp_path):
    from rstn_training_synthetic import learning_setup

    windows, model_config, tc = learning_setup(batch_size=4)
    torch.manual_seed(0)
    model = build_model("rstn", model_config)
    result = train_view(model, windows, view="axial", model_config=model_config, data_config=DataConfig(),
                        train_config=tc, out_dir=tmp_path, device="cuda", progress=False)
    assert result.finished
    records = read_metrics(tmp_path / "metrics.jsonl")
    assert all(np.isfinite(r["loss"]) for r in records)
    assert np.mean([r["loss_1"] for r in records[-20:]]) < 0.3
    model.to("cpu").eval()
    with torch.inference_mode():
        out = model.coarse(torch.rand(1, 3, 29, 31))
    assert out.shape == (1, 3, 29, 31) and torch.isfinite(out).all()
