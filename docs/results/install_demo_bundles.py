"""Install fine-tuned bundles as the built-in demo bundles (rstn_core/demo/{rstn,c2f}.rstn).

Each bundle's meta gets the demo record (phantom set, held-out fold, anatomy version, how it was trained), its
weights are stored as float16 (as `rstn demo-train` does; loading casts them back to float32), its per-view
training curves are copied beside it, and rstn_core/demo/demo.json records the commands. Refuses to replace
the installed bundles without --overwrite.

    .venv/bin/python docs/results/install_demo_bundles.py --rstn runs/demo3/rstn_v2 --c2f runs/demo3/c2f_v2 \
        --phantoms runs/demo3/phantoms --anatomy 2 --suffix v2 --overwrite
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rstn_core.atomic import atomic_write_text
from rstn_core.commands.demo import install_demo_bundle
from rstn_core.models.bundle import load_bundle

DEMO = Path(__file__).resolve().parents[2] / "rstn_core" / "demo"
FINETUNE = {
    "rstn": "rstn train --data {data} --fold 0 --view all --method rstn --init rstn_core/demo/rstn.rstn "
            "--stages I,J --iterations I=300,J=900 --augment none --out {run}",
    "c2f": "rstn train --data {data} --fold 0 --view all --method c2f --init rstn_core/demo/c2f.rstn "
           "--iterations coarse=1200,fine=1200 --augment none --out {run}",
}


def install(method: str, run: Path, args: argparse.Namespace, record: dict) -> None:
    bundle_path = run / "model.rstn"
    if not bundle_path.is_file():
        raise SystemExit(f"no bundle at {bundle_path}")
    target = DEMO / f"{method}.rstn"
    if target.exists() and not args.overwrite:
        raise SystemExit(f"{target} exists; pass --overwrite to replace the installed demo bundle")
    bundle = load_bundle(bundle_path)
    if bundle.method != method:
        raise SystemExit(f"{bundle_path} is a {bundle.method} bundle, expected {method}")
    previous = record.get(method, {})
    command = FINETUNE[method].format(data=args.phantoms, run=run)
    history = [previous.get("command"), previous.get("continued"), *previous.get("finetunes", []), command]
    install_demo_bundle(bundle, run, DEMO, {
        "demo": True, "phantom_seed": 0, "phantom_n": 24, "phantom_anatomy": args.anatomy,
        "held_out": "fold 0 of 4 (phantom_000..phantom_005)",
        "demo_case": f"generate_phantom(0, anatomy={args.anatomy})",
        "stages": [h for h in history if h]}, suffix=args.suffix)
    record[method] = {**previous, "phantom_anatomy": args.anatomy,
                      "finetunes": [*previous.get("finetunes", []), command],
                      "phantoms": f"rstn phantoms --out {args.phantoms} --n 24 --seed 0 (anatomy {args.anatomy})"}
    print(f"installed {bundle_path} -> {target}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rstn", type=Path, required=True, help="RSTN training run folder (with model.rstn)")
    parser.add_argument("--c2f", type=Path, required=True, help="C2F training run folder (with model.rstn)")
    parser.add_argument("--phantoms", default="runs/demo3/phantoms", help="the phantom set both were tuned on")
    parser.add_argument("--anatomy", type=int, required=True, help="phantom anatomy version of that set")
    parser.add_argument("--suffix", required=True, help="suffix of the copied training curves, e.g. v2")
    parser.add_argument("--overwrite", action="store_true", help="replace the installed demo bundles")
    args = parser.parse_args(argv)
    record_path = DEMO / "demo.json"
    record = json.loads(record_path.read_text())
    for method, run in (("rstn", args.rstn), ("c2f", args.c2f)):
        install(method, run, args, record)
    record["note"] = (record.get("note", "") + "; " if record.get("note") else "") + (
        f"both bundles fine-tuned on anatomy-version-{args.anatomy} phantoms (same 24 seeds, fold 0 held out)")
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
