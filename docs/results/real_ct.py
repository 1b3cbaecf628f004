"""Run bundles on the real example CT and record what docs/results/real_ct.md reports.

For each bundle: DSC against the TotalSegmentator pancreas (label 7) on the input grid, per round (round 0 =
the coarse stage), per view at round 0, inter-round DSC, stop reason, seconds; with ``--oracle`` also the run
whose crops come from the true pancreas. The real example is a test case only: nothing here trains, tunes a
threshold or picks a checkpoint.

    .venv/bin/python docs/results/real_ct.py --bundle before-rstn=rstn_core/demo/rstn.rstn \
        --bundle before-c2f=rstn_core/demo/c2f.rstn --out docs/results/real_ct/before.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from rstn_core.atomic import atomic_write_text
from rstn_core.evaluation.metrics import dsc
from rstn_core.inference.engine import RSTNEngine
from rstn_core.io import load_case
from rstn_core.models.bundle import load_bundle
from rstn_core.resample import mask_on_input

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "totalseg_example"


def run_bundle(path: Path, case, oracle: bool = False) -> dict:
    bundle = load_bundle(path)
    engine = RSTNEngine.from_bundle(bundle)
    if oracle:
        engine = engine.with_config(crops_from="truth")
    work = engine.prepare(case)
    states, t0 = [], time.perf_counter()
    for state in engine.iterate(work):
        states.append(state)
    first = states[0]
    per_view = {v.value: dsc(mask_on_input(work, first.view_probs[v].astype(np.float32) >= 0.5), case.label)
                for v in first.view_probs}
    peak = {v.value: float(first.view_probs[v].max()) for v in first.view_probs}
    return {"bundle": str(path), "method": bundle.method, "oracle": oracle, "fusion": engine.config.fusion,
            "spacing": engine.spacing, "dsc_grid": states[-1].dsc_grid,
            "coarse_dsc": first.dsc_vs_truth, "final_dsc": states[-1].dsc_vs_truth,
            "dsc_per_round": [s.dsc_vs_truth for s in states],
            "inter_round_dsc": [s.inter_round_dsc for s in states],
            "coarse_dsc_per_view": per_view, "coarse_peak_prob_per_view": peak,
            "voxels": int(mask_on_input(work, states[-1].mask).sum()), "truth_voxels": int(case.label.sum()),
            "stopped": states[-1].stopped, "rounds": states[-1].round,
            "seconds": round(time.perf_counter() - t0, 2),
            "training": "synthseg" if bundle.meta.get("training", {}).get("augment") else "none"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", required=True, help="NAME=PATH of a .rstn bundle")
    parser.add_argument("--real", type=Path, default=REAL, help="folder with ct.nii.gz and labels.nii.gz")
    parser.add_argument("--oracle", action="store_true", help="also run each RSTN bundle with oracle crops")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write (refused if it exists)")
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists; remove it first")
    if not (args.real / "ct.nii.gz").is_file():
        parser.error(f"the real example is not at {args.real}")
    case = load_case(args.real / "ct.nii.gz", args.real / "labels.nii.gz", (7,), case_id="totalseg_example")
    results = {}
    for item in args.bundle:
        name, _, path = item.partition("=")
        results[name] = run_bundle(Path(path), case)
        print(name, json.dumps({k: results[name][k] for k in ("coarse_dsc", "final_dsc", "stopped", "seconds")}))
        if args.oracle and results[name]["method"] == "rstn":
            results[name + "-oracle"] = run_bundle(Path(path), case, oracle=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
