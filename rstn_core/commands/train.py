"""``rstn train``: train RSTN (or the C2F baseline) on a dataset folder, one view after another."""

from __future__ import annotations

import argparse
import logging

from rstn_core.errors import RstnError

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
  torchrun --nproc-per-node 4 -m rstn_core.cli train --data NIH/ --recipe paper --device cuda --out runs/p
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--out", required=True, help="output folder (checkpoints, metrics, model.rstn)")
    parser.add_argument("--fold", type=int, default=0, help="test fold to hold out (default 0)")
    parser.add_argument("--folds", type=int, default=4, help="number of folds (default 4)")
    parser.add_argument("--split", help="JSON split file {'folds': [[ids...], ...]} instead of --folds")
    parser.add_argument("--view", default="axial", help="axial, coronal, sagittal or all (default axial)")
    parser.add_argument("--method", choices=("rstn", "c2f"), default="rstn")
    parser.add_argument("--recipe", choices=("paper", "cpu-small", "tiny"), default="cpu-small",
                        help="training schedule (default cpu-small)")
    parser.add_argument("--preset", choices=("paper", "cpu-small", "tiny"),
                        help="model size preset (default: the recipe's)")
    parser.add_argument("--stages", help="comma-separated stages to run, e.g. S,I,J or I,J")
    parser.add_argument("--iterations", help="per-stage iterations, e.g. S=100,I=200,J=200 (or one number for all)")
    parser.add_argument("--labels", help="target label ids, e.g. 7 or 1,2 (default: the dataset's)")
    parser.add_argument("--organ", default="pancreas", help="organ name stored in the bundle")
    parser.add_argument("--vgg16", help="ImageNet VGG16 state dict (torchvision layout) file or URL (paper preset)")
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoints in --out")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
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


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from rstn_core import __version__
    from rstn_core.config import DataConfig, ModelConfig
    from rstn_core.data.folds import fold_cases, kfold_split, load_split
    from rstn_core.data.layouts import discover_dataset
    from rstn_core.data.sampler import TrainingWindows
    from rstn_core.io import load_case
    from rstn_core.models.bundle import BUNDLE_SUFFIX, ModelBundle, save_bundle
    from rstn_core.models.rstn import build_model
    from rstn_core.models.weights import load_vgg16_weights
    from rstn_core.training.checkpoint import LAST_CHECKPOINT
    from rstn_core.training.distributed import barrier, init_distributed, shutdown
    from rstn_core.training.loop import train_view
    from rstn_core.training.recipes import get_recipe, select_stages, with_iterations
    from rstn_core.types import ALL_VIEWS, View

    try:
        views = list(ALL_VIEWS) if args.view == "all" else [View.parse(args.view)]
        recipe = get_recipe(args.recipe, args.method)
        model_config = recipe.model
        if args.preset:
            model_config = ModelConfig.from_preset(args.preset, dropout=model_config.dropout)
        train_config = recipe.train
        if args.seed is not None:
            train_config = train_config.replace(seed=args.seed)
        if args.stages:
            train_config = select_stages(train_config, [s.strip() for s in args.stages.split(",") if s.strip()])
        if args.iterations:
            train_config = with_iterations(train_config, parse_iterations(args.iterations,
                                                                          [s.name for s in train_config.stages]))
    except ValueError as exc:
        raise RstnError(str(exc)) from exc

    dataset = discover_dataset(args.data)
    targets = parse_int_list(args.labels, "--labels") if args.labels else dataset.default_target_labels
    data_config = DataConfig(target_labels=tuple(targets))
    folds = load_split(args.split, dataset.case_ids) if args.split else kfold_split(dataset.case_ids, args.folds)
    train_ids, test_ids = fold_cases(dataset.case_ids, folds, args.fold)
    log.info("%s (%s): %d training cases, %d held out (fold %d)", dataset.name, dataset.layout, len(train_ids),
             len(test_ids), args.fold)
    cases = [load_case(dataset.get(c).image, dataset.get(c).label, targets, case_id=c) for c in train_ids]

    info, device = init_distributed(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RstnError(f"--device {args.device}: CUDA is not available on this machine")
    out = Path(args.out)
    models = {}
    try:
        for view in views:
            windows = TrainingWindows(cases, view, data_config)
            torch.manual_seed(train_config.seed)
            model = build_model(args.method, model_config)
            reinit = None
            if args.vgg16:
                for net in (model.coarse_net, model.fine_net):
                    load_vgg16_weights(net, args.vgg16)

                def reinit(m, _cfg=model_config):
                    m.load_state_dict(build_model(args.method, _cfg).state_dict())
                    for net in (m.coarse_net, m.fine_net):
                        load_vgg16_weights(net, args.vgg16)
            resume = out / view.value / LAST_CHECKPOINT if args.resume else None
            if resume is not None and not resume.exists():
                raise RstnError(f"--resume: no checkpoint at {resume}")
            result = train_view(model, windows, view=view.value, model_config=model_config, data_config=data_config,
                                train_config=train_config, out_dir=out / view.value, device=device, resume=resume,
                                reinit=reinit, dist_info=info, progress=not args.no_progress)
            models[view] = result.model.cpu().eval()
            barrier(info)
        if info.is_main:
            meta = {"organ": args.organ, "target_labels": list(targets), "code_version": __version__,
                    "training": {"dataset": dataset.name, "layout": dataset.layout, "fold": args.fold,
                                 "train_cases": train_ids, "test_cases": test_ids, "recipe": args.recipe,
                                 "train_config": train_config.to_dict()}}
            path = save_bundle(ModelBundle(args.method, model_config, data_config, models, meta),
                               out / f"model{BUNDLE_SUFFIX}")
            log.info("bundle written: %s (views: %s)", path, ", ".join(v.value for v in models))
    finally:
        shutdown(info)
    return 0
