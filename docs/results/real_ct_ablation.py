"""Which of the realism changes matter: the axial coarse net (round 0, one view) of bundles trained from the
same start with and without the new phantoms and domain randomisation, scored on held-out phantoms of both
kinds and on the real example (test only). Writes a JSON table.

    .venv/bin/python docs/results/real_ct_ablation.py --bundle A=runs/abl/A/model.rstn ... \
        --phantoms runs/demo2/phantoms_pv --phantoms runs/demo2/phantoms --out docs/results/real_ct/ablation.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from rstn_core.atomic import atomic_write_text
from rstn_core.config import InferenceConfig
from rstn_core.data.folds import fold_cases, kfold_split
from rstn_core.data.layouts import discover_dataset
from rstn_core.inference.engine import RSTNEngine
from rstn_core.io import load_case
from rstn_core.models.bundle import load_bundle
from rstn_core.types import View

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "totalseg_example"


def held_out(root: Path) -> list:  # the set is named by its folder: pass distinct folder names
    """The fold-0 test cases of a phantom set (never seen by fold-0 training)."""
    dataset = discover_dataset(root)
    _, test_ids = fold_cases(dataset.case_ids, kfold_split(dataset.case_ids, 4), 0)
    return [load_case(dataset.get(c).image, dataset.get(c).label, (7,), case_id=c) for c in test_ids]


def axial_engine(bundle_path: Path) -> RSTNEngine:
    """The bundle's axial coarse net alone, at the bundle's spacing (round 0 only)."""
    bundle = load_bundle(bundle_path)
    return RSTNEngine({View.AXIAL: bundle.models[View.AXIAL]}, bundle.data_config, InferenceConfig(max_rounds=0),
                      spacing=bundle.data_config.spacing)


def axial_coarse_scores(engine: RSTNEngine, cases: list) -> list[dict]:
    """Per case: DSC of the axial coarse mask, and the axial probability inside the true gland (mean and 99th
    percentile) and anywhere (max): whether a net responds to the gland at all, even below threshold."""
    out = []
    for c in cases:
        prepared = engine.prepare(c)
        state = engine.start(prepared)
        prob = np.asarray(state.view_probs[View.AXIAL], dtype=np.float32)
        gland = np.asarray(prepared.label, dtype=bool)
        out.append({"dsc": float(state.dsc_vs_truth), "gland_mean_p": float(prob[gland].mean()),
                    "gland_p99": float(np.percentile(prob[gland], 99)), "max_p": float(prob.max())})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--phantoms", action="append", type=Path, required=True, help="phantom set (fold 0 held out)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.out.exists():
        parser.error(f"{args.out} exists; remove it first")
    sets = {p.name: held_out(p) for p in args.phantoms}
    if (REAL / "ct.nii.gz").is_file():
        sets["real_example"] = [load_case(REAL / "ct.nii.gz", REAL / "labels.nii.gz", (7,), case_id="real")]
    table = {}
    for item in args.bundle:
        name, _, path = item.partition("=")
        row, engine = {}, axial_engine(Path(path))  # loaded once for every set
        for set_name, cases in sets.items():
            scores = axial_coarse_scores(engine, cases)
            row[set_name] = {"mean": float(np.mean([s["dsc"] for s in scores])),
                             "gland_mean_p": float(np.mean([s["gland_mean_p"] for s in scores])),
                             "per_case": dict(zip([c.case_id for c in cases], scores))}
        table[name] = {"bundle": path, **row}
        print(name, {k: (round(v["mean"] * 100, 1), round(v["gland_mean_p"], 3)) for k, v in row.items()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out, json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
