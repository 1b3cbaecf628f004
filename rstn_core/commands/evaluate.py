"""``rstn evaluate``: cross-validated DSC tables for RSTN, C2F and the oracle (the paper's §4)."""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from rstn_core.errors import RstnError

HELP = "cross-validate fold bundles on a dataset and write the paper's tables"
DESCRIPTION = """Evaluate one bundle per fold on every test case of a dataset (NIH Pancreas-CT, MSD Task07,
manifest or phantom layout) and write results.md (the paper's tables), results.json and per_case.csv.

--models is a folder with fold0.rstn, fold1.rstn, ... (RSTN; also used by the oracle) and
c2f_fold0.rstn ... (or c2f/fold0.rstn ...), optionally split.json; or a JSON mapping
{"rstn": [...], "c2f": [...], "split": "split.json"}.

example:
  rstn evaluate --data Pancreas-CT/ --models runs/nih/ --methods rstn,c2f,oracle --out results/
"""

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, type=Path, help="dataset folder")
    p.add_argument("--models", required=True, type=Path, help="folder of fold bundles or a JSON mapping")
    p.add_argument("--methods", default="rstn,c2f,oracle", help="comma-separated: rstn, c2f, oracle")
    p.add_argument("--out", required=True, type=Path, help="output folder for results.md/.json and per_case.csv")
    p.add_argument("--max-rounds", type=int, default=10, help="rounds R run for every case (default 10)")
    p.add_argument("--stop-dsc", type=float, default=0.99, help="stop rule for the final DSC (default 0.99)")
    p.add_argument("--no-postprocess", action="store_true", help="keep every connected component")
    p.add_argument("--device", default="auto", help="torch device (default auto)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default="auto",
                   help="numerical precision (default auto; fp32 is the authors' setting)")
    p.add_argument("--overwrite", action="store_true", help="replace the results of an earlier evaluation in --out")
    p.add_argument("--exclude-leaked", action="store_true",
                   help="leave out (with a warning) test cases a fold's bundle was trained on, instead of refusing")


RESULT_NAMES = ("results.md", "results.json", "per_case.csv", "dsc_boxplot.png", "convergence.png",
                "rstn_vs_c2f.png", "rstn_vs_c2f_coarse.png")


def check_models_file(path: Path) -> None:
    """--models given as a file must be a UTF-8 JSON mapping (refuse binary files in one line)."""
    from rstn_core.errors import CheckpointError

    if not path.is_file():
        return
    if path.suffix.lower() == ".rstn":
        raise CheckpointError(f"--models {path}: a single bundle; pass a folder of fold bundles "
                              "(fold0.rstn, fold1.rstn, ...) or a JSON mapping")
    try:
        json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"--models {path}: not a JSON mapping of fold bundles ({type(exc).__name__}); "
                              "pass a folder of fold bundles or a JSON file") from None


def checked_models(args: argparse.Namespace, scratch: Path) -> Path:
    """--models, or a mapping without the leaked test cases (--exclude-leaked); refuses leakage."""
    from rstn_core.errors import DataError
    from rstn_core.evaluation.leakage import describe, find_leaks, fold_plan, without_leaks

    bundles, split, name = fold_plan(args.data, args.models)
    leaks = find_leaks(bundles, split, name)
    if not leaks:
        return args.models
    if not args.exclude_leaked:
        raise DataError(f"train/test leakage: {describe(leaks)}; evaluate on held-out cases only "
                        "(or pass --exclude-leaked to leave those cases out)")
    n = sum(len(x.cases) for x in leaks)
    log.warning("TRAIN/TEST LEAKAGE: leaving out %d test case(s) the bundles were trained on: %s", n, describe(leaks))
    return without_leaks(bundles, split, leaks, scratch)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from rstn_core.commands.common import parse_methods, resolve_device
    from rstn_core.config import InferenceConfig
    from rstn_core.evaluation.crossval import cross_validate
    from rstn_core.evaluation.tables import write_results
    from rstn_core.folders import check_writable
    from rstn_core.outputs import refuse_existing

    methods = parse_methods(args.methods)
    try:
        config = InferenceConfig(max_rounds=args.max_rounds, stop_dsc=args.stop_dsc,
                                 postprocess=not args.no_postprocess, precision=args.precision)
    except ValueError as exc:
        raise RstnError(str(exc)) from None
    device = resolve_device(args.device)
    refuse_existing([args.out / n for n in RESULT_NAMES], args.overwrite, what="result")
    check_models_file(args.models)
    check_writable(args.out)
    bar = tqdm(desc="evaluate", unit="case-method")

    def progress(result) -> None:
        bar.set_postfix_str(f"{result.method} {result.case_id} DSC={result.final_dsc:.4f}")
        bar.update(1)

    with tempfile.TemporaryDirectory() as scratch:
        models = checked_models(args, Path(scratch))
        results = cross_validate(args.data, models, methods, config, device, progress)
    bar.close()
    paths = write_results(results, args.out)
    from rstn_core.evaluation.result_figures import write_figures

    figures = write_figures(results, args.out)
    from rstn_core.evaluation.tables import summarize

    for method, d in summarize(results)["dsc"].items():
        print(f"{method}: DSC {100 * d['mean']:.2f} ± {100 * d['std']:.2f} over {d['n']} case(s)")
    print(f"wrote {paths['markdown']}, {paths['json']}, {paths['csv']} and {len(figures)} figures "
          f"({', '.join(p.name for p in figures.values())})")
    return 0
