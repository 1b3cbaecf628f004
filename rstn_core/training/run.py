"""A whole training run on a dataset folder as one function: the views of one method -> a model bundle.

``rstn train`` (``rstn_core/commands/train.py``) and ``notebooks/train.ipynb`` do the same thing:
discover the dataset, hold out one fold, load the training cases, train each view through the
recipe's stages with :func:`rstn_core.training.loop.train_view` and save a :class:`ModelBundle`.
This module holds that sequence so both can call it (STYLE habit 7).

Output folder ``out``: ``model.rstn`` and per view ``<view>/last.ckpt``, ``<view>/metrics.jsonl``
and ``<view>/curves.png``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rstn_core import __version__
from rstn_core.config import ModelConfig, TrainConfig
from rstn_core.data.augment import AugmentConfig
from rstn_core.errors import RstnError
from rstn_core.models.bundle import BUNDLE_SUFFIX, ModelBundle, load_bundle, save_bundle
from rstn_core.models.rstn import RSTN, build_model
from rstn_core.models.weights import load_vgg16_weights
from rstn_core.training.checkpoint import LAST_CHECKPOINT
from rstn_core.training.distributed import barrier, init_distributed, shutdown
from rstn_core.training.loop import train_view
from rstn_core.training.prepare import TrainingData, prepare_training_data, view_windows
from rstn_core.types import ALL_VIEWS, Method, View

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """The configurations of one run, resolved from a recipe name and its overrides."""

    recipe: str
    method: Method
    model_config: ModelConfig
    train_config: TrainConfig
    spacing: tuple[float, float, float] | None = None  # training grid (mm); None = each case's native grid
    augment: AugmentConfig | None = None  # domain randomisation of the training windows; None = off


#: the grid each recipe trains at: the paper kept native spacing; cpu-small was designed for 3 mm; tiny (tests) native
RECIPE_SPACING: dict[str, tuple[float, float, float] | None] = {"paper": None, "cpu-small": (3.0, 3.0, 3.0),
                                                                 "tiny": None}


def resolve_plan(recipe: str = "cpu-small", method: Method | str = Method.RSTN, *, preset: str | None = None,
                 seed: int | None = None, stages: Sequence[str] | None = None,
                 iterations: Mapping[str, int] | int | None = None,
                 saliency: str | None = None, precision: str | None = None,
                 augment: AugmentConfig | bool | None = None,
                 spacing: tuple[float, float, float] | None | str = "recipe") -> TrainingPlan:
    """Recipe ``recipe`` for ``method`` with overrides: model ``preset``, ``seed``, the ``stages`` to run
    (e.g. ``["I", "J"]``), per-stage ``iterations`` (``{"S": 50}`` or one int for every stage) and the
    ``saliency`` variant (Table 1: ``1x1``, ``3x3``, ``5x5``, ``3x3-3x3``, ``3x3-5x5``; RSTN only) and
    the ``precision`` (``fp32``, ``bf16``, ``fp16``, ``auto``; default the recipe's ``auto``).

    ``augment``: domain randomisation (``True`` = :class:`AugmentConfig` defaults). ``spacing``: the training
    grid in mm (``"recipe"``: the recipe's, :data:`RECIPE_SPACING`; ``None``: native spacing).

    Raises ``ValueError`` naming an unknown recipe, preset or stage.
    """
    from rstn_core.training.recipes import get_recipe, select_stages, with_iterations

    method = Method.parse(method)
    chosen = get_recipe(recipe, method)
    model_config = chosen.model
    if preset:
        model_config = ModelConfig.from_preset(preset, dropout=model_config.dropout)
    if saliency is not None:
        if method is not Method.RSTN:
            raise ValueError(f"--saliency {saliency!r} applies to RSTN only; C2F has no saliency module")
        model_config = model_config.replace(saliency=saliency)
    train_config = chosen.train
    if seed is not None:
        train_config = train_config.replace(seed=int(seed))
    if precision is not None:
        train_config = train_config.replace(precision=precision)
    if stages:
        train_config = select_stages(train_config, list(stages))
    if iterations is not None:
        if isinstance(iterations, int):
            iterations = {s.name: iterations for s in train_config.stages}
        train_config = with_iterations(train_config, dict(iterations))
    if spacing == "recipe":
        spacing = RECIPE_SPACING.get(recipe, (3.0, 3.0, 3.0))
    if spacing is not None:
        spacing = tuple(float(v) for v in spacing)  # type: ignore[assignment]
        if len(spacing) != 3 or min(spacing) <= 0:
            raise ValueError(f"training spacing must be three positive mm values, got {spacing}")
    augment = AugmentConfig() if augment is True else (augment or None)
    return TrainingPlan(recipe, method, model_config, train_config, spacing, augment)  # type: ignore[arg-type]


RANDOM_INIT = "random"  # ``init`` value: train from random weights on purpose
VGG16_HINT = ("torchvision's ImageNet VGG16, vgg16-397923af.pth: download "
              "https://download.pytorch.org/models/vgg16-397923af.pth on a machine with internet (or run "
              "torchvision.models.vgg16(weights='IMAGENET1K_V1') there: it lands in ~/.cache/torch/hub/checkpoints/) "
              "and pass --vgg16 /path/to/vgg16-397923af.pth")


def check_initialisation(model_config: ModelConfig, vgg16: str | None, init: str | Path | None) -> None:
    """Refuse to train the paper's un-normalised FCN-8s from random weights unless asked (``init="random"``).

    Without normalisation the full FCN-8s does not learn from random weights at the paper's learning
    rate (docs/results/training_notes.md); the paper started from pretrained weights.
    """
    if vgg16 and init is not None and str(init) == RANDOM_INIT:
        raise RstnError("--vgg16 and --init random contradict each other: pick one")
    if model_config.norm == "none" and not vgg16 and init is None:
        raise RstnError(f"the {model_config.preset!r} model (FCN-8s without normalisation) does not learn from random "
                        f"weights; start it from {VGG16_HINT}, or pass --init random to train from random weights "
                        "anyway")


def parse_views(view: str | View | Sequence[str | View]) -> list[View]:
    """``"all"`` -> the three views; a name or a list of names -> those views."""
    if isinstance(view, str | View):
        return list(ALL_VIEWS) if view == "all" else [View.parse(view)]
    return [View.parse(v) for v in view]


def train_dataset(data: str | Path, out: str | Path, plan: TrainingPlan, *, views: str | Sequence[str] = "axial",
                  fold: int = 0, folds: int = 4, split: str | Path | None = None,
                  labels: Sequence[int] | None = None, organ: str = "pancreas", vgg16: str | None = None,
                  resume: bool = False, device: str = "cpu", progress: bool = True,
                  init: str | Path | None = None, should_stop: Callable[[], bool] | None = None) -> Path | None:
    """Train ``views`` of ``plan.method`` on the training cases of ``fold`` of the dataset at ``data``.

    ``folds``: number of folds of the sorted case ids (or ``split``: a JSON split file). ``labels``:
    target label ids (default: the dataset's). ``vgg16``: ImageNet VGG16 weights for both FCNs.
    ``resume``: continue from ``out/<view>/last.ckpt``. ``init``: start each view's networks from
    the weights of that view in an existing bundle of the same method and model configuration
    (continued training or fine-tuning with a new schedule), or ``"random"`` to start the un-normalised
    ``paper`` model from random weights on purpose (it is refused otherwise without ``vgg16``:
    :func:`check_initialisation`).
    ``should_stop``: asked after every iteration; True stops the run with ``out/<view>/last.ckpt`` written
    and no bundle (continue with ``resume=True``).
    Returns the bundle path ``out/model.rstn`` (``None`` on ranks other than 0 of a distributed run, and
    when ``should_stop`` stopped the run).
    Raises :class:`RstnError` (user errors) with the offending value in the message.
    """
    try:
        view_list = parse_views(views)
    except ValueError as exc:
        raise RstnError(str(exc)) from exc
    if not resume:  # a resumed run takes its weights from the checkpoints
        check_initialisation(plan.model_config, vgg16, init)
    training = prepare_training_data(data, plan.spacing, fold=fold, folds=folds, split=split, labels=labels)
    start = _start_bundle(init, plan)
    info, torch_device = init_distributed(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise RstnError(f"device {device!r}: CUDA is not available on this machine")
    out = Path(out)
    models, precision = {}, None
    try:
        for view in view_list:
            windows = view_windows(training, view, plan.augment, plan.train_config.seed)
            model, reinit = _initial_model(plan, view, start, init, vgg16)
            result = train_view(model, windows, view=view.value, model_config=plan.model_config,
                                data_config=training.data_config, train_config=plan.train_config,
                                out_dir=out / view.value, device=torch_device,
                                resume=_resume_checkpoint(out, view, view_list) if resume else None, reinit=reinit,
                                dist_info=info, progress=progress, should_stop=should_stop)
            if not result.finished:
                log.info("stopped during the %s view: resume with resume=True (checkpoint %s)", view.value,
                         out / view.value / LAST_CHECKPOINT)
                return None
            models[view] = result.model.cpu().eval()
            precision = result.precision
            barrier(info)
        if not info.is_main:
            return None
        return write_training_bundle(out, plan, training, models, organ=organ, init=init, vgg16=vgg16,
                                     precision=precision)
    finally:
        shutdown(info)


def _start_bundle(init: str | Path | None, plan: TrainingPlan) -> ModelBundle | None:
    """The bundle ``init`` names (None for none or ``"random"``), checked to fit ``plan``."""
    if init is None or str(init) == RANDOM_INIT:
        return None
    start = load_bundle(init)
    if start.method != plan.method or start.model_config != plan.model_config:
        raise RstnError(f"init {init}: a {start.method} bundle with model {start.model_config.to_dict()} does not fit "
                        f"this {plan.method} run with model {plan.model_config.to_dict()}")
    return start


def _initial_model(plan: TrainingPlan, view: View, start: ModelBundle | None, init: str | Path | None,
                   vgg16: str | None):
    """-> (the model ``view`` starts from, the re-initialisation of an S restart or None for random).

    Random weights come from an explicit generator seeded by the plan's seed (no global seeding); then the
    ``start`` bundle's weights of ``view``, or ImageNet VGG16 for both FCNs."""
    method, model_config = plan.method, plan.model_config
    model = build_model(method, model_config, torch.Generator().manual_seed(plan.train_config.seed))
    if start is not None:
        if view not in start.models:
            raise RstnError(f"init {init}: the bundle has no {view.value} model (views: "
                            f"{', '.join(v.value for v in start.models)})")
        model.load_state_dict(start.models[view].state_dict())
    if not vgg16:
        return model, None
    for net in (model.coarse_net, model.fine_net):
        load_vgg16_weights(net, vgg16)

    def reinit(m: RSTN, generator: torch.Generator) -> None:
        m.load_state_dict(build_model(method, model_config, generator).state_dict())
        for net in (m.coarse_net, m.fine_net):
            load_vgg16_weights(net, vgg16)
    return model, reinit


def _resume_checkpoint(out: Path, view: View, view_list: Sequence[View]) -> Path | None:
    """``out/<view>/last.ckpt``; None (train the view from the start) when another view has one but this one
    has not; :class:`RstnError` when no view has one."""
    checkpoint = out / view.value / LAST_CHECKPOINT
    if checkpoint.exists():
        return checkpoint
    if not any((out / v.value / LAST_CHECKPOINT).exists() for v in view_list):
        raise RstnError(f"resume: no checkpoint at {checkpoint}")
    log.info("resume: no checkpoint for the %s view yet; training it from the start", view.value)
    return None


def write_training_bundle(out: Path, plan: TrainingPlan, training: TrainingData, models: dict[View, RSTN], *,
                          organ: str, init: str | Path | None, vgg16: str | None, precision: dict | None) -> Path:
    """``out/model.rstn``: the trained ``models`` with what made them in ``meta["training"]``."""
    init = None if init is not None and str(init) == RANDOM_INIT else init
    dataset, targets = training.dataset, training.data_config.target_labels
    meta = {"organ": organ, "target_labels": list(targets), "code_version": __version__,
            "training": {"dataset": dataset.name, "layout": dataset.layout, "fold": training.fold,
                         "train_cases": training.train_ids, "test_cases": training.test_ids, "recipe": plan.recipe,
                         "init": str(init) if init else (None if vgg16 else RANDOM_INIT),
                         "vgg16": str(vgg16) if vgg16 else None, "precision": precision,
                         "spacing": list(plan.spacing) if plan.spacing else None,
                         "augment": plan.augment.to_dict() if plan.augment else None,
                         "train_config": plan.train_config.to_dict()}}
    bundle = ModelBundle(plan.method, plan.model_config, training.data_config, models, meta)
    path = save_bundle(bundle, out / f"model{BUNDLE_SUFFIX}")
    log.info("bundle written: %s (views: %s)", path, ", ".join(v.value for v in models))
    return path
