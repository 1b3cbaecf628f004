"""``rstn train``: train RSTN (or the C2F baseline) on a dataset folder, one view after another."""

from __future__ import annotations

import argparse
import logging

from rstn_core.commands.common import word_argument, word_metavar
from rstn_core.config import SALIENCY_VARIANTS
from rstn_core.errors import RstnError
from rstn_core.types import TRAINED_METHODS, Method

log = logging.getLogger(__name__)

HELP = "train RSTN or the C2F baseline on a dataset folder (stages S, I, J per view)"
DESCRIPTION = """\
Train per view, in the stages S -> I -> J (RSTN) or coarse -> fine (C2F), and write a model
bundle (model.rstn) that `rstn predict`, the app and the notebooks load.

The dataset folder is discovered automatically (NIH Pancreas-CT, MSD Task07, a manifest CSV/JSON or
a phantom folder). Training uses the training cases of --fold (4-fold split by sorted case id, or
--split FILE). Output folder: model.rstn, and per view <view>/last.ckpt, <view>/metrics.jsonl and
<view>/curves.png. --resume continues exactly from the views' last checkpoints.

Examples:
  rstn train --data phantoms/ --preset tiny --view axial --out runs/smoke
  rstn train --data Task07_Pancreas/ --fold 0 --recipe cpu-small --view all --out runs/f0
  rstn train --data NIH/ --recipe paper --vgg16 vgg16-397923af.pth --out runs/p

--recipe paper is the paper's run: every view, the GPU when there is one (cuda, else cpu), the
released schedule (RSTN S/I/J 10k/30k/40k; C2F coarse 80k at 1e-5, fine 60k at 1e-4) and the
full FCN-8s, which needs ImageNet VGG16 weights: torchvision's vgg16-397923af.pth from
https://download.pytorch.org/models/vgg16-397923af.pth (or --init random to train from random
weights on purpose). --precision auto (default) is bf16 on GPUs that support it (else fp16) and fp32
on CPUs without native bf16; fp32 is the authors' setting. Under torchrun the effective batch is
the number of processes x the batch at the same learning rate (see rstn_core/training/distributed.py).
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--out", required=True, help="output folder (checkpoints, metrics, model.rstn)")
    parser.add_argument("--fold", type=int, default=0, help="test fold to hold out (default 0)")
    parser.add_argument("--folds", type=int, default=4, help="number of folds (default 4)")
    parser.add_argument("--split", help="JSON split file {'folds': [[ids...], ...]} instead of --folds")
    parser.add_argument("--view", default=None,
                        help="axial, coronal, sagittal or all (default: all for --recipe paper, else axial)")
    parser.add_argument("--method", type=word_argument(Method, TRAINED_METHODS),
                        metavar=word_metavar(Method, TRAINED_METHODS), default=Method.RSTN)
    parser.add_argument("--recipe", choices=("paper", "cpu-small", "tiny"), default="cpu-small",
                        help="training schedule (default cpu-small)")
    parser.add_argument("--preset", choices=("paper", "cpu-small", "tiny"),
                        help="model size preset (default: the recipe's)")
    parser.add_argument("--saliency", choices=SALIENCY_VARIANTS,
                        help="saliency transformation variant (Table 1; default 3x3-3x3, RSTN only)")
    parser.add_argument("--stages", help="comma-separated stages to run, e.g. S,I,J or I,J")
    parser.add_argument("--iterations", help="per-stage iterations, e.g. S=100,I=200,J=200 (or one number for all)")
    parser.add_argument("--labels", help="target label ids, e.g. 7 or 1,2 (default: the dataset's)")
    parser.add_argument("--organ", default="pancreas", help="organ name stored in the bundle")
    parser.add_argument("--vgg16", help="ImageNet VGG16 state dict (torchvision layout) file or URL (paper preset)")
    parser.add_argument("--init", default=None,
                        help="start from the weights of an existing bundle (same method and preset; new schedule), "
                             "or 'random' to train the paper preset from random weights on purpose")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"), default=None,
                        help="numerical precision (default auto: bf16/fp16 autocast on CUDA, bf16 on CPUs with "
                             "native bf16, else fp32); recorded in checkpoints and the bundle")
    parser.add_argument("--augment", choices=("none", "synthseg"), default="none",
                        help="domain randomisation of the training windows: per-organ intensity, gamma, gain field, "
                             "blur, noise (SynthSeg-style; recorded in the bundle). Default none")
    parser.add_argument("--spacing", type=float, nargs=3, metavar=("R", "A", "S"), default=None,
                        help="training grid in mm (default: the recipe's; cpu-small 3 3 3, paper and tiny native)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoints in --out")
    parser.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: cuda when available for --recipe paper, else cpu)")
    parser.add_argument("--seed", type=int, help="random seed (default: the recipe's)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_int_list(text: str, what: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise RstnError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise RstnError(f"{what} is empty")
    return values


def parse_iterations(text: str, stage_names: list[str]) -> dict[str, int]:
    try:
        if "=" not in text:
            return {name: int(text) for name in stage_names}
        return {k.strip(): int(v) for k, v in (item.split("=") for item in text.split(",") if item.strip())}
    except ValueError:
        raise RstnError(f"--iterations must look like S=100,I=200 or a single number, got {text!r}") from None


def recipe_defaults(recipe: str, view: str | None, device: str | None) -> tuple[str, str]:
    """(view, device) with the recipe's defaults filled in: the paper's run is every view on the GPU."""
    if recipe == "paper":
        if device is None:
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
            if device == "cpu":
                log.warning("--recipe paper: no CUDA device here, training on the CPU (very slow)")
        return view or "all", device
    return view or "axial", device or "cpu"


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from rstn_core.commands.common import check_train_args
    from rstn_core.training.recipes import with_iterations
    from rstn_core.training.run import resolve_plan, train_dataset

    check_train_args(args)  # folds, device, and the run folder: refused unless --overwrite or --resume
    try:
        stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
        plan = resolve_plan(args.recipe, args.method, preset=args.preset, seed=args.seed, stages=stages,
                            saliency=args.saliency, precision=args.precision, augment=args.augment == "synthseg",
                            spacing=tuple(args.spacing) if args.spacing else "recipe")
        if args.iterations:
            names = [s.name for s in plan.train_config.stages]
            plan = replace(plan, train_config=with_iterations(plan.train_config,
                                                              parse_iterations(args.iterations, names)))
    except ValueError as exc:
        raise RstnError(str(exc)) from exc
    labels = parse_int_list(args.labels, "--labels") if args.labels else None
    view, device = recipe_defaults(args.recipe, args.view, args.device)
    train_dataset(args.data, args.out, plan, views=view, fold=args.fold, folds=args.folds, split=args.split,
                  labels=labels, organ=args.organ, vgg16=args.vgg16, resume=args.resume, device=device,
                  progress=not args.no_progress, init=args.init)
    return 0
