"""``rstn demo-train``: reproduce the built-in demo bundles (RSTN and C2F, three views, CPU).

What it does, in order (each step is skipped when its output is already there, so an
interrupted run continues; training resumes from its checkpoints):

1. writes the fixed phantom set (``--n`` phantoms from ``--seed``) into ``WORK/phantoms``;
2. trains the ``cpu-small`` recipe of each method on the training cases of fold 0 of 4 (the
   held-out fold, ``phantom_000`` .. ``phantom_005``, stays unseen; so does the app's demo case,
   ``generate_phantom(0)``, which is not in the set) into ``WORK/<method>``;
3. copies each bundle into ``--out`` with float16 weights (``<method>.rstn``), beside its
   training curves and metrics.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path

from rstn_core.types import TRAINED_METHODS, Method

HELP = "train the built-in demo bundles (RSTN and C2F, cpu-small, three views) on phantoms"
DESCRIPTION = __doc__

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "demo"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--work", default="runs/demo", help="working folder: phantoms, checkpoints, logs")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"where the bundles go (default {DEFAULT_OUT})")
    parser.add_argument("--n", type=int, default=24, help="number of phantoms, at least 4 (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="phantom set seed (default 0)")
    parser.add_argument("--methods", default="rstn,c2f", help="comma-separated: rstn, c2f")
    parser.add_argument("--view", default="all", help="axial, coronal, sagittal or all (default all)")
    parser.add_argument("--iterations", default=None,
                        help="per-stage iterations, e.g. S=500,I=250,J=250 or coarse=500,fine=500")
    parser.add_argument("--appearance", default="random",
                        help="phantom appearance: random (phases, fatty and atrophic glands; default) or a phase name")
    parser.add_argument("--fov", choices=("random", "abdomen", "abdomen-pelvis"), default="random",
                        help="phantom field of view: random (default; half of the cases reach the femoral heads), "
                             "abdomen or abdomen-pelvis")
    parser.add_argument("--augment", choices=("none", "synthseg"), default="synthseg",
                        help="domain randomisation of the training windows (default synthseg)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true")


def _iterations(text: str | None, method: Method) -> dict[str, int] | None:
    from rstn_core.training.stages import METHOD_STAGES

    if not text:
        return None
    pairs = dict(item.split("=") for item in text.split(","))
    names = METHOD_STAGES[method]
    return {k: int(v) for k, v in pairs.items() if k in names} or None


def run(args: argparse.Namespace) -> int:
    from rstn_core.atomic import atomic_write_text
    from rstn_core.data.phantom import ANATOMY_VERSION, write_phantom_dataset
    from rstn_core.models.bundle import load_bundle
    from rstn_core.training.run import resolve_plan, train_dataset

    work, out = Path(args.work), Path(args.out)
    phantoms = work / "phantoms"
    methods = check_demo_args(args)  # before anything is written
    if not (phantoms / "manifest.csv").is_file():
        write_phantom_dataset(phantoms, args.n, args.seed, overwrite=phantoms.exists(), appearance=args.appearance,
                              anatomy=ANATOMY_VERSION, fov=args.fov)
    for method in methods:
        plan = resolve_plan("cpu-small", method, iterations=_iterations(args.iterations, method),
                            augment=args.augment == "synthseg")
        run_dir = work / method
        resume = (run_dir / "model.rstn").exists() or any(run_dir.glob("*/last.ckpt"))
        bundle_path = train_dataset(phantoms, run_dir, plan, views=args.view, fold=0, folds=4,
                                    resume=resume, device=args.device, progress=not args.no_progress)
        if bundle_path is None:  # not rank 0
            continue
        meta = {"demo": True, "phantom_seed": args.seed, "phantom_n": args.n,
                "held_out": "fold 0 of 4 (phantom_000..)", "phantom_anatomy": ANATOMY_VERSION,
                "demo_case": f"generate_phantom(0, anatomy={ANATOMY_VERSION})"}
        log.info("demo bundle: %s", install_demo_bundle(load_bundle(bundle_path), run_dir, out, meta))
    record_path = out / "demo.json"
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for method in methods:
        record[method] = {"phantom_seed": args.seed, "phantom_n": args.n, "phantom_anatomy": ANATOMY_VERSION,
                          "command": "rstn demo-train " + _argv(args)}
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    return 0


def install_demo_bundle(bundle, run_dir: Path, out: Path, meta: dict, suffix: str = "") -> Path:
    """Store ``bundle`` (from the training run ``run_dir``) as ``out/<method>.rstn`` with float16 weights and
    ``meta`` added, and copy the run's per-view training curves and metrics beside it
    (``<method>_<view>[_<suffix>]_<file>``). Returns the bundle's path."""
    from rstn_core.models.bundle import save_bundle

    method = str(bundle.method)
    bundle.meta.update(meta)
    out.mkdir(parents=True, exist_ok=True)
    target = Path(save_bundle(bundle, out / f"{method}.rstn", half=True))
    tag = f"_{suffix}" if suffix else ""
    for view_dir in sorted(p for p in run_dir.iterdir() if p.is_dir()):
        for name in ("metrics.jsonl", "curves.png"):
            if (view_dir / name).is_file():
                shutil.copyfile(view_dir / name, out / f"{method}_{view_dir.name}{tag}_{name}")
    return target


def check_demo_args(args: argparse.Namespace) -> list[Method]:
    """The methods to train, once every argument is checked (``RstnError`` naming the bad one)."""
    from rstn_core.commands.common import parse_methods, resolve_device
    from rstn_core.errors import RstnError

    if args.n < 4:
        raise RstnError(f"--n must be at least 4 (4 folds; fold 0 is held out for testing), got {args.n}")
    methods = parse_methods(args.methods, TRAINED_METHODS)
    for method in methods:
        try:
            _iterations(args.iterations, method)
        except ValueError:
            raise RstnError(f"--iterations must look like S=500,I=250,J=250, got {args.iterations!r}") from None
    if args.device != "cpu":
        resolve_device(args.device)
    return methods


def _argv(args: argparse.Namespace) -> str:
    parts = [f"--n {args.n}", f"--seed {args.seed}", f"--view {args.view}", f"--appearance {args.appearance}",
             f"--fov {args.fov}", f"--augment {args.augment}"]
    if args.iterations:
        parts.append(f"--iterations {args.iterations}")
    return " ".join(parts)
