"""Training speed and peak memory per model preset (RSTN stage J, the most expensive step).

Usage: python benchmarks/train_speed.py [--device cpu|cuda] [--iterations N] [--size H W] [--threads T]
Prints one line per preset and (with --write) appends a table to benchmarks/RESULTS_train.md.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc

import numpy as np
import torch

from rstn_core.config import ModelConfig
from rstn_core.models.rstn import build_model
from rstn_core.training.optim import build_optimizer
from rstn_core.training.recipes import get_recipe
from rstn_core.training.stages import STAGE_SPECS
from rstn_core.training.unroll import unrolled_loss


def bench(preset: str, device: torch.device, iterations: int, size: tuple[int, int]) -> dict:
    torch.manual_seed(0)
    model = build_model("rstn", ModelConfig.from_preset(preset)).to(device).train()
    optimizer = build_optimizer(model, get_recipe("paper").train)
    h, w = size
    x = torch.rand(1, 3, h, w, device=device)
    y = torch.zeros(1, 3, h, w, device=device)
    y[..., h // 3 : h // 2, w // 3 : w // 2] = 1
    rng = np.random.default_rng(0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    tracemalloc.start()

    def step():
        out = unrolled_loss(model, x, y, STAGE_SPECS["J"], 1, 20, 0.5, rng)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()

    step()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elapsed = time.perf_counter() - start
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result = {"preset": preset, "device": str(device), "size": f"{h}x{w}", "it_s": iterations / elapsed,
              "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.type == "cuda":
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return result


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--presets", default="tiny,cpu-small,paper")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    for preset in args.presets.split(","):
        iters = 2 if preset == "paper" and device.type == "cpu" else args.iterations
        r = bench(preset, device, iters, tuple(args.size))
        extra = f", CUDA peak {r['cuda_peak_mib']:.0f} MiB" if "cuda_peak_mib" in r else ""
        print(f"{r['preset']:10s} {r['device']:6s} {r['size']:8s} {r['it_s']:8.2f} it/s, "
              f"process maxrss {r['maxrss_mib']:.0f} MiB{extra}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
