"""``rstn predict``: segment a CT (NIfTI file, DICOM folder, or a folder of cases) with a model bundle."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any

from rstn_core.commands.common import word_argument, word_metavar
from rstn_core.errors import CheckpointError, DataError, RstnError
from rstn_core.io import is_nifti
from rstn_core.prediction import (  # noqa: F401 - prob_path stays importable from here (tests, scripts)
    Organ,
    check_organ,
    organ_of,
    planned_outputs,
    predict_case,
    prob_path,
    summary_line,
)
from rstn_core.types import TRAINED_METHODS, Fusion, Method

HELP = "segment a CT (NIfTI file or DICOM folder, or a folder of cases) with a trained bundle"
DESCRIPTION = """Segment the target organ in CT with the Recurrent Saliency Transformation Network.

examples:
  rstn predict -i ct.nii.gz -o pancreas.nii.gz
  rstn predict -i PANCREAS_0001/ -o out/ --label label0001.nii.gz
  rstn predict -i cases/ -o predictions/            # every case; reruns skip finished ones
  torchrun --nproc-per-node 4 -m rstn_core.cli predict -i cases/ -o predictions/
  rstn predict -i ct.nii.gz -o organs.nii.gz --model pancreas.rstn --model spleen.rstn

The mask is written on the input's own grid and affine, so it overlays the CT in 3D Slicer or
ITK-SNAP. Several --model bundles (one per organ) give one multi-label map plus a JSON label table
(<output>.labels.json); where organs claim the same voxel the most confident one wins.
"""

log = logging.getLogger(__name__)

DEMO_BUNDLE = Path(__file__).resolve().parents[1] / "demo" / "rstn.rstn"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", required=True, type=Path,
                   help="a NIfTI file, a DICOM series folder, or a folder of cases")
    p.add_argument("-o", "--output", required=True, type=Path,
                   help="output mask (.nii.gz) for one CT, or a folder (one <case>.nii.gz per case)")
    p.add_argument("-m", "--model", action="append", type=Path, default=None,
                   help=f"model bundle (.rstn); repeat for several organs (default: the demo bundle {DEMO_BUNDLE})")
    p.add_argument("--organ", nargs="+", default=None, metavar="NAME_OR_ID",
                   help="organ(s) the bundle(s) must segment (name or label id); refuses a mismatch")
    p.add_argument("--label", type=Path, default=None, help="ground-truth label map, to report the DSC")
    p.add_argument("--method", type=word_argument(Method), metavar=word_metavar(Method), default=None,
                   help="check the bundle's method; 'oracle' crops from --label (analysis only)")
    p.add_argument("--views", default=None, help="comma-separated subset of the bundle's views (default: all)")
    p.add_argument("--max-rounds", type=int, default=None, help="most fine rounds R (default 10)")
    p.add_argument("--stop-dsc", type=float, default=None, help="inter-round DSC to stop at (default 0.99)")
    p.add_argument("--fusion", type=word_argument(Fusion), metavar=word_metavar(Fusion), default=None,
                   help="view fusion at round 0 (default: mean for RSTN, vote for C2F); later rounds use the mean")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default=None,
                   help="numerical precision (default auto: fp16 on CUDA, bf16 on CPUs with native bf16, else fp32)")
    p.add_argument("--no-postprocess", action="store_true", help="keep every connected component")
    p.add_argument("--batch-size", type=int, default=None, help="windows per network call (default 8)")
    p.add_argument("--workers", type=int, default=None,
                   help="network calls at once (default 0 = auto: on the CPU one per torch thread, side by side; "
                        "set the threads with OMP_NUM_THREADS); the masks do not depend on it")
    p.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda, cuda:1 ... (default auto)")
    p.add_argument("--save-prob", action="store_true", help="also write the fused probability (<output>_prob.nii.gz)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (and redo finished cases)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def resolve_device(name: str) -> str:
    from rstn_core.commands.common import resolve_device as resolve

    return resolve(name)


def build_organs(args: argparse.Namespace, device: str) -> list[Organ]:
    from rstn_core.config import InferenceConfig
    from rstn_core.inference.engine import RSTNEngine
    from rstn_core.inference.fusion import method_fusion
    from rstn_core.models.bundle import load_bundle
    from rstn_core.types import View

    paths = args.model or [DEMO_BUNDLE]
    organs: list[Organ] = []
    for path in paths:
        if not Path(path).exists():
            hint = " (the built-in demo bundle is not installed; pass --model)" if path == DEMO_BUNDLE else ""
            raise CheckpointError(f"model bundle {path} does not exist{hint}")
        bundle = load_bundle(path, device)
        if args.method in TRAINED_METHODS and bundle.method != args.method:
            raise CheckpointError(f"--method {args.method} but bundle {path} holds a {bundle.method} model")
        if args.organ and len(paths) == 1:
            check_organ(bundle, args.organ, path)
        models = dict(bundle.models)
        if args.views:
            try:
                wanted = [View.parse(v.strip()) for v in args.views.split(",") if v.strip()]
            except ValueError as exc:
                raise RstnError(f"--views: {exc}") from None
            missing = [v.value for v in wanted if v not in models]
            if missing:
                raise CheckpointError(f"bundle {path} has views {[v.value for v in models]}, not {missing}")
            models = {v: models[v] for v in wanted}
        fusion, fine_fusion = method_fusion(bundle.method)
        config = InferenceConfig(fusion=fusion, fine_fusion=fine_fusion)
        changes: dict[str, Any] = {"postprocess": not args.no_postprocess,
                                   "crops_from": (args.method or bundle.method).crops_from}
        for key in ("max_rounds", "stop_dsc", "fusion", "batch_size", "workers", "precision"):
            if getattr(args, key) is not None:
                changes[key] = getattr(args, key)
        try:
            config = config.replace(**changes)
        except ValueError as exc:
            raise RstnError(str(exc)) from None
        label_id, name = organ_of(bundle)
        organs.append(Organ(label_id, name, RSTNEngine(models, bundle.data_config, config, device,
                                                       spacing=bundle.data_config.spacing)))
    ids = [o.label_id for o in organs]
    if len(set(ids)) != len(ids):
        raise CheckpointError(f"several bundles write the same label id: {ids}")
    if args.organ and len(organs) > 1:
        known = {str(o.label_id) for o in organs} | {o.name.lower() for o in organs}
        unknown = [o for o in args.organ if o.strip().lower() not in known]
        if unknown:
            raise CheckpointError(f"no bundle segments {unknown}; the bundles segment "
                                  f"{[f'{o.name} ({o.label_id})' for o in organs]}")
    return organs


def find_cases(root: Path) -> tuple[list[tuple[str, Path]], bool]:
    """-> ([(case_id, image path)], is_batch); see :func:`rstn_core.data.layouts.find_cases`."""
    from rstn_core.data.layouts import find_cases as find

    return find(root)


def shard(items: list, env: dict[str, str] | None = None) -> list:
    """This process's share under torchrun (RANK/WORLD_SIZE): ``items[rank::world_size]``."""
    env = os.environ if env is None else env
    world = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    if world < 1 or not 0 <= rank < world:
        raise RstnError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return items[rank::world]


def _produce(organs: list[Organ], image: Path, mask: Path, args: argparse.Namespace, case_id: str,
             wait: bool = False) -> str | dict[str, Any]:
    """One case under the claim/completion-record protocol of :mod:`rstn_core.outputs`."""
    from rstn_core.outputs import produce_case

    candidates = planned_outputs(mask, organs, args.save_prob)

    def produce():
        s = predict_case(organs, image, mask, args.label, args.save_prob, True, not args.no_progress,
                         case_id=case_id)
        return [p for p in candidates if p.exists()], s

    return produce_case(mask, candidates, produce, args.overwrite, wait=wait)


def run(args: argparse.Namespace) -> int:
    from rstn_core import outputs

    cases, batch = find_cases(args.input)
    if batch and args.label is not None and len(cases) == 1:
        batch = False  # one case found in a nested folder: --label applies to it
    if batch and args.label is not None:
        raise RstnError(f"--label applies to one CT but {args.input} holds {len(cases)} cases; "
                        "for a folder of cases use `rstn evaluate`")
    if args.method is Method.ORACLE and args.label is None:
        raise RstnError("--method oracle crops from the ground truth: pass --label")
    if not batch:
        output = args.output if is_nifti(args.output) else args.output / f"{cases[0][0]}.nii.gz"
        inputs = outputs.input_files(cases[0][1]) + ([args.label] if args.label else [])
        outputs.check_not_inputs(planned_outputs(output), inputs)
        outputs.check_not_inside(planned_outputs(output), [cases[0][1]] if cases[0][1].is_dir() else [])
        if outputs.case_state(output) in ("finished", "foreign"):
            outputs.refuse_existing([output], args.overwrite)
        organs = build_organs(args, resolve_device(args.device))
        s = _produce(organs, cases[0][1], output, args, cases[0][0])
        if s == "busy":
            raise DataError(f"output {output} is being written by another rstn predict run "
                            f"(pid {outputs.Claim(output).holder()})")
        if s == "finished":
            raise DataError(f"output {output} already exists; {outputs.OVERWRITE_HINT}")
        print(summary_line(s))
        return 0
    return _run_batch(args, cases)


def _run_batch(args: argparse.Namespace, cases: list[tuple[str, Path]]) -> int:
    from rstn_core import outputs

    if is_nifti(args.output):
        raise RstnError(f"input {args.input} holds several cases: -o must be a folder, got {args.output}")
    mine = [(cid, img, args.output / f"{cid}.nii.gz") for cid, img in shard(cases)]
    inputs = [f for _, img, _ in mine for f in outputs.input_files(img)]
    outputs.check_not_inputs([p for *_, mask in mine for p in planned_outputs(mask)], inputs)
    outputs.check_not_inside([args.output / "x.nii.gz"], [img for _, img, _ in mine if img.is_dir()])
    states = {cid: outputs.case_state(mask) for cid, _, mask in mine}
    if not args.overwrite:
        outputs.refuse_existing([mask for cid, _, mask in mine if states[cid] == "foreign"], False,
                                hint="it was not written by a finished `rstn predict` run (no completion "
                                     "record); " + outputs.OVERWRITE_HINT)
    todo = [c for c in mine if args.overwrite or states[c[0]] != "finished"]
    if len(todo) < len(mine):
        log.info("skipping %d finished case(s) in %s", len(mine) - len(todo), args.output)
    if not todo:
        print(f"all {len(mine)} case(s) already predicted in {args.output}")
        return 0
    organs = build_organs(args, resolve_device(args.device))
    failed, busy = [], []
    for wait, queue in ((False, todo), (True, None)):
        for cid, image, mask in (queue if queue is not None else busy):
            try:
                s = _produce(organs, image, mask, args, cid, wait=wait)
            except DataError as exc:  # one bad case must not stop the batch
                log.error("%s: %s", cid, exc)
                failed.append(cid)
                continue
            if s == "busy":
                log.info("%s: being predicted by another run (pid %s); coming back to it", cid,
                         outputs.Claim(mask).holder())
                busy.append((cid, image, mask))
            elif s == "finished":
                log.info("%s: finished by another run", cid)
            else:
                print(summary_line(s))
    if failed:
        raise DataError(f"{len(failed)} of {len(todo)} case(s) failed: {failed}")
    return 0
