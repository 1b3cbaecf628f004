"""Engine speed and memory against (a) bare network compute and (b) the released code's loop.

For each volume (a phantom, and a 512 x 512 x 250 synthetic CT) and each model preset:

* engine: ``RSTNEngine.start`` + ``--rounds`` calls of ``step`` (batched, inference mode);
* (a) bare compute: the same networks on exactly the windows/crops the engine ran, in the same
  batches, timing only the network calls (batches are built outside the timed region, one at a
  time, so memory stays bounded);
* (b) released-code loop: batch 1, autograd on (no ``no_grad``), window by window, as
  ``coarse2fine_testing.py`` of the authors' release ran it: the coarse net on every window at
  round 0; at rounds >= 1, for every window whose three slices touch the previous mask, the saliency
  net on the full window, the product, the crop and the fine net (windows whose slices hold no mask
  are skipped, the release's ``mask_sum == 0: continue``). ``--sample-every k`` runs every k-th
  window and scales up.

The networks are the real FCN-8s/saliency of ``--presets`` with random weights; their outputs are
shifted by a fixed intensity rule (``+20 * (x - t)``) so the masks look like an organ and the rounds
touch a realistic number of windows. Rounds are forced (``step`` is called ``--rounds`` times)
because untrained networks converge at once, while the paper averages ~5 rounds.

Run: ``.venv/bin/python benchmarks/engine_speed.py`` (see ``--help``); prints a Markdown table.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rstn_core.config import DataConfig, InferenceConfig, ModelConfig  # noqa: E402
from rstn_core.geometry import crop  # noqa: E402
from rstn_core.inference.batching import chunks, group_by_box_size  # noqa: E402
from rstn_core.inference.engine import RSTNEngine  # noqa: E402
from rstn_core.intensity import normalize_hu  # noqa: E402
from rstn_core.models.rstn import build_model  # noqa: E402
from rstn_core.slicing import make_windows, to_view  # noqa: E402
from rstn_core.types import ALL_VIEWS, Case, Orientation, Volume  # noqa: E402

CPU = torch.device("cpu")
ORGAN_HU = 230.0
ORGAN_X = (215.0 + 100.0) / 340.0  # intensity rule threshold (normalised)


class Shifted(torch.nn.Module):
    """A real RSTN whose logits get ``+20 * (x - ORGAN_X)``: untrained, but organ-shaped outputs."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.uses_saliency = net.uses_saliency

    def coarse(self, x):
        return self.net.coarse(x) + 20.0 * (x - ORGAN_X)

    def saliency(self, prob):
        return self.net.saliency(prob)

    def refine(self, x_crop):
        return self.net.refine(x_crop) + 20.0 * (x_crop - ORGAN_X)


def volume_case(hu: np.ndarray, name: str) -> Case:
    eye = np.eye(4)
    ornt = np.array([[0, 1], [1, 1], [2, 1]], float)
    return Case(name, Volume(hu.astype(np.float32), eye, Orientation(eye, tuple(hu.shape), ornt), name))


def synthetic_case(shape: tuple[int, int, int], seed: int = 0) -> Case:
    rng = np.random.default_rng(seed)
    hu = rng.uniform(-100, 150, size=shape).astype(np.float32)
    centre = [s // 2 for s in shape]
    radii = (shape[0] * 0.1, shape[1] * 0.05, shape[2] * 0.08)  # a pancreas-sized ellipsoid
    grid = np.ogrid[tuple(slice(0, s) for s in shape)]
    organ = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0
    hu[organ] = ORGAN_HU
    return volume_case(hu, f"synthetic {shape[0]}x{shape[1]}x{shape[2]}")


def phantom_case(seed: int = 0) -> Case:
    from rstn_core.data.phantom import DEMO_ANATOMY, PANCREAS_ID, generate_phantom

    ph = generate_phantom(seed, anatomy=DEMO_ANATOMY)  # the demo model's own kind
    hu = np.minimum(ph.hu.astype(np.float32), 200.0)  # only the pancreas is brighter than the rule
    hu[ph.labels == PANCREAS_ID] = ORGAN_HU
    shape = hu.shape
    return volume_case(hu, f"phantom {shape[0]}x{shape[1]}x{shape[2]}")


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so wall-clock timings cover it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    sync(device)
    return time.perf_counter()


def build_models(preset: str) -> dict:
    torch.manual_seed(0)
    config = ModelConfig.from_preset(preset)
    return {v: Shifted(build_model("rstn", config)).eval() for v in ALL_VIEWS}


class Record:
    """What (a) and (b) need of a round: its boxes and (float16) fused probability."""

    def __init__(self, state) -> None:
        self.boxes = state.boxes
        self.fused_prob = state.fused_prob.astype(np.float16)


def run_engine(engine: RSTNEngine, case: Case, rounds: int):
    """Time start + ``rounds`` steps; the engine's own states are dropped as it goes (as ``run``)."""
    records = []
    spent = 0.0
    dev = engine.device
    t0 = clock(dev)
    state = engine.start(case)
    spent += clock(dev) - t0
    for _ in range(rounds):
        records.append(Record(state))
        t0 = clock(dev)
        state = engine.step(case, state)
        spent += clock(dev) - t0
    records.append(Record(state))
    return spent, records


def bare_compute(models, case: Case, states, batch_size: int, data_config: DataConfig,
                 device: torch.device = CPU) -> float:
    """(a) the engine's windows and crops, same batches, timing the network calls only (float16
    autocast on CUDA, as the engine)."""
    spent = 0.0
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), amp:
        for view in ALL_VIEWS:
            hu_stack = to_view(case.image.data, view)
            for centres in chunks(range(hu_stack.shape[0]), batch_size):
                x = torch.from_numpy(normalize_hu(make_windows(hu_stack, centres), data_config)).to(device)
                t0 = clock(device)
                torch.sigmoid(models[view].coarse(x))
                spent += clock(device) - t0
        for prev, state in zip(states[:-1], states[1:]):
            for view in ALL_VIEWS:
                hu_stack = to_view(case.image.data, view)
                prob_stack = to_view(prev.fused_prob, view)
                boxes = state.boxes[view]
                for batch in group_by_box_size(boxes, batch_size):
                    x = torch.from_numpy(normalize_hu(make_windows(hu_stack, batch), data_config)).to(device)
                    p = torch.from_numpy(make_windows(prob_stack, batch).astype(np.float32)).to(device)
                    t0 = clock(device)
                    transformed = x * models[view].saliency(p)
                    crops = torch.stack([crop(transformed[i], boxes[c]) for i, c in enumerate(batch)])
                    torch.sigmoid(models[view].refine(crops))
                    spent += clock(device) - t0
    return spent


def released_loop(models, case: Case, states, data_config: DataConfig, sample_every: int,
                  device: torch.device = CPU) -> float:
    """(b) the release's loop: batch 1, autograd on, windows touching the mask; scaled up when sampling."""
    spent = 0.0
    for view in ALL_VIEWS:
        hu_stack = to_view(case.image.data, view)
        centres = range(0, hu_stack.shape[0], sample_every)
        t0 = clock(device)
        for c in centres:
            x = torch.from_numpy(normalize_hu(make_windows(hu_stack, [c]), data_config)).to(device)
            torch.sigmoid(models[view].coarse(x)).detach().cpu().numpy()
        spent += (clock(device) - t0) * hu_stack.shape[0] / len(centres)
    for prev, state in zip(states[:-1], states[1:]):
        for view in ALL_VIEWS:
            hu_stack = to_view(case.image.data, view)
            prob_stack = to_view(prev.fused_prob, view)
            boxes = state.boxes[view]
            # windows whose slices touch the previous mask; the others are skipped, as in the release
            group = sorted(c for c, b in boxes.items() if b is not None)
            if not group:
                continue
            picked = group[::sample_every]
            t0 = clock(device)
            for c in picked:
                x = torch.from_numpy(normalize_hu(make_windows(hu_stack, [c]), data_config)).to(device)
                p = torch.from_numpy(make_windows(prob_stack, [c]).astype(np.float32)).to(device)
                transformed = x * models[view].saliency(p)
                torch.sigmoid(models[view].refine(crop(transformed, boxes[c]))).detach().cpu().numpy()
            spent += (clock(device) - t0) * len(group) / len(picked)
    return spent


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="tiny,cpu-small")
    p.add_argument("--shape", type=int, nargs=3, default=(512, 512, 250))
    p.add_argument("--rounds", type=int, default=5, help="fine rounds forced per case (paper: 5.22 on average)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sample-every", type=int, default=1, help="(b): run every k-th window and scale up")
    p.add_argument("--no-phantom", action="store_true")
    p.add_argument("--no-synthetic", action="store_true")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (CUDA: the engine and (a) use float16 autocast)")
    p.add_argument("--skip-cold", action="store_true", help="time the engine once (cold) instead of cold + warm")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cases = [] if args.no_phantom else [phantom_case()]
    if not args.no_synthetic:
        cases.append(synthetic_case(tuple(args.shape)))
    data_config = DataConfig()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, threads={args.threads}, "
          f"batch={args.batch_size}, rounds forced={args.rounds}, (b) sample every {args.sample_every}, device={device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print()
    print("| volume | preset | windows r0 / fine | engine cold s | engine warm s | (a) bare s | engine/(a) | "
          "(b) released s | (b)/engine | maxrss MB | GPU peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for case in cases:
        for preset in [s.strip() for s in args.presets.split(",") if s.strip()]:
            models = build_models(preset)
            engine = RSTNEngine(models, data_config, InferenceConfig(batch_size=args.batch_size), device=device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            cold_s, states = run_engine(engine, case, args.rounds)  # first sight of every shape (oneDNN set-up)
            rss = maxrss_mb()
            gpu_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
            engine_s = cold_s
            if not args.skip_cold:
                del states
                engine_s, states = run_engine(engine, case, args.rounds)  # warm, as (a) and (b) run
            bare_s = bare_compute(models, case, states, args.batch_size, data_config, device)
            released_s = released_loop(models, case, states, data_config, args.sample_every, device)
            windows0 = sum(case.image.shape[v.axis] for v in ALL_VIEWS)
            fine = sum(len(b) for s in states[1:] for b in s.boxes.values())
            print(f"| {case.case_id} | {preset} | {windows0} / {fine} | {cold_s:.1f} | {engine_s:.1f} | {bare_s:.1f} | "
                  f"{engine_s / bare_s:.2f}x | {released_s:.1f} | {released_s / engine_s:.1f}x | {rss:.0f} | "
                  f"{'–' if gpu_mb is None else f'{gpu_mb:.0f}'} |",
                  flush=True)
            del states
    print()
    print(f"peak resident memory of the whole run: {maxrss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
