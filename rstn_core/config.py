"""Frozen configuration dataclasses, one per concern, validated on creation.

Every configuration round-trips through plain dicts (``to_dict`` / ``from_dict``) so it can be
stored beside the weights in a checkpoint or bundle and read back without executing code.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rstn_core.types import TRAINED_METHODS, CropReference, Fusion, Method, ProbDtype, SaliencySource, Word

T = TypeVar("T", bound="_Config")

SALIENCY_VARIANTS = ("1x1", "3x3", "5x5", "3x3-3x3", "3x3-5x5")
PRECISIONS = ("fp32", "bf16", "fp16", "auto")  # rstn_core.precision resolves them per device

# Named model sizes (SPEC §2.1). ``width`` multiplies every VGG16 / fc channel count.
# ``paper`` is the exact FCN-8s. The CPU presets train from random initialisation, so they add
# GroupNorm (``norm``); ``cpu-small`` also up-samples its input 4x so that 3 mm slices (phantoms,
# small machines) reach the fine network at about the paper's 0.7-0.8 mm pixel size (the coarse
# network, which only has to find the organ, at 1.5 mm): FCN-8s predicts at stride 8, too coarse
# for a pancreas a few 3 mm pixels thick (docs/results/training_notes.md).
MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {"width": 1.0, "input_downsample": 1, "norm": "none", "input_upsample": 1},
    "cpu-small": {"width": 0.0625, "input_downsample": 1, "norm": "group", "input_upsample": 4,
                  "coarse_input_upsample": 2},
    "tiny": {"width": 0.03125, "input_downsample": 1, "norm": "group", "input_upsample": 1},
}


class _Config:
    """Mixin: dict round trip with unknown-key rejection."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value  # a plain str: bundles and checkpoints hold plain values only
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{cls.__name__}: unknown keys {unknown}; known: {sorted(names)}")
        kwargs = {}
        for key, value in data.items():
            kwargs[key] = tuple(value) if isinstance(value, list) else value
        return cls(**kwargs)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _parse_word(config: _Config, name: str, kind: type[Word], allowed: tuple[Word, ...] | None = None) -> None:
    """Replace the string field ``name`` of a frozen config by its ``kind`` member (parsed once, here)."""
    value = getattr(config, name)
    member = kind.find(value, allowed)
    if member is None:
        raise ValueError(f"{type(config).__name__}.{name} must be {kind.expected(allowed)}, got {value!r}")
    object.__setattr__(config, name, member)


@dataclass(frozen=True)
class DataConfig(_Config):
    """How CT intensities and targets are prepared (SPEC §1.2, §1.4).

    ``target_labels``: label ids that make up the target organ (target = label in ids).
    ``hu_min``/``hu_max``: HU window clipped and scaled to [0, 1].
    ``drop_smallest_fraction``: fraction of target-containing slices with the smallest
    target area left out of training sampling (0.02 in the paper's code).
    ``spacing``: optional (R, A, S) resampling spacing in mm; ``None`` keeps native spacing.
    """

    target_labels: tuple[int, ...] = (1,)
    hu_min: float = -100.0
    hu_max: float = 240.0
    drop_smallest_fraction: float = 0.02
    spacing: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        _check(len(self.target_labels) > 0, "DataConfig.target_labels must name at least one label id")
        _check(all(int(t) > 0 for t in self.target_labels),
               f"DataConfig.target_labels must be positive label ids, got {self.target_labels}")
        _check(self.hu_max > self.hu_min, f"DataConfig: hu_max ({self.hu_max}) must exceed hu_min ({self.hu_min})")
        _check(0.0 <= self.drop_smallest_fraction < 1.0,
               f"DataConfig.drop_smallest_fraction must be in [0, 1), got {self.drop_smallest_fraction}")
        if self.spacing is not None:
            _check(len(self.spacing) == 3 and all(s > 0 for s in self.spacing),
                   f"DataConfig.spacing must be three positive numbers, got {self.spacing}")


@dataclass(frozen=True)
class ModelConfig(_Config):
    """Network shapes (SPEC §2.1–2.2).

    ``width``: channel multiplier on VGG16/fc (1.0 = the paper's FCN-8s).
    ``saliency``: one of ``SALIENCY_VARIANTS`` (default ``3x3-3x3``, the paper's best).
    ``input_downsample``: integer factor the slices are down-sampled by before the network
    (1 = none); outputs are up-sampled back.
    """

    preset: str = "paper"
    width: float = 1.0
    saliency: str = "3x3-3x3"
    input_downsample: int = 1
    dropout: float = 0.5
    saliency_bias: float = 1.0
    norm: str = "none"
    input_upsample: int = 1
    coarse_input_upsample: int | None = None  # None: the coarse net uses ``input_upsample`` too

    def __post_init__(self) -> None:
        _check(0.0 < self.width <= 1.0, f"ModelConfig.width must be in (0, 1], got {self.width}")
        _check(self.saliency in SALIENCY_VARIANTS,
               f"ModelConfig.saliency must be one of {SALIENCY_VARIANTS}, got {self.saliency!r}")
        _check(int(self.input_downsample) >= 1,
               f"ModelConfig.input_downsample must be >= 1, got {self.input_downsample}")
        _check(0.0 <= self.dropout < 1.0, f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        _check(self.norm in ("none", "group"), f"ModelConfig.norm must be 'none' or 'group', got {self.norm!r}")
        _check(int(self.input_upsample) >= 1,
               f"ModelConfig.input_upsample must be >= 1, got {self.input_upsample}")
        _check(self.coarse_input_upsample is None or int(self.coarse_input_upsample) >= 1,
               f"ModelConfig.coarse_input_upsample must be >= 1 or None, got {self.coarse_input_upsample}")
        _check(self.input_upsample == 1 or self.input_downsample == 1,
               "ModelConfig: input_upsample and input_downsample cannot both be > 1")

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> ModelConfig:
        if name not in MODEL_PRESETS:
            raise ValueError(f"unknown model preset {name!r}; known: {sorted(MODEL_PRESETS)}")
        return cls(preset=name, **{**MODEL_PRESETS[name], **overrides})


@dataclass(frozen=True)
class InferenceConfig(_Config):
    """Algorithm 1 settings (SPEC §4).

    ``fusion``: round 0's view fusion, ``"mean"`` (average view probabilities) or ``"vote"``
    (majority of view masks). ``fine_fusion``: the fusion of rounds >= 1 (default ``"mean"``: both
    releases threshold the mean there; C2F votes only at round 0). ``"vote"`` in both reproduces the
    old every-round vote, for ablations only.
    ``saliency_source``: ``"fused"`` (released code) or ``"view"`` (the paper's per-view P).
    ``crops_from``: the reference mask of the fine rounds' crops, ``"prediction"`` (Z_{t-1}) or ``"truth"``
    (the oracle). Mode strings are parsed into their enums (``rstn_core.types``) here, once.
    ``batch_size``: windows (and equal-size fine crops) per network call.
    ``workers``: network calls at once (0 = auto: on the CPU one per torch thread, side by side in worker
    threads; on an accelerator one; :mod:`rstn_core.inference.parallel`). Results do not depend on it.
    ``precision``: ``fp32``, ``bf16``, ``fp16`` or ``auto`` (:mod:`rstn_core.precision`: fp16 autocast
    on CUDA, bf16 on a CPU with native bf16, else fp32); the engine records what it resolved to.
    """

    fusion: Fusion = Fusion.MEAN
    fine_fusion: Fusion = Fusion.MEAN
    saliency_source: SaliencySource = SaliencySource.FUSED
    postprocess: bool = True
    threshold: float = 0.5
    max_rounds: int = 10
    stop_dsc: float = 0.99
    margin: int = 20
    crops_from: CropReference = CropReference.PREDICTION
    batch_size: int = 8
    workers: int = 0
    precision: str = "auto"
    view_prob_dtype: ProbDtype = ProbDtype.FLOAT16  # storage of RoundState.view_probs
    min_component_fraction: float = 0.5  # post-processing: keep components >= this x the largest

    def __post_init__(self) -> None:
        _parse_word(self, "view_prob_dtype", ProbDtype)
        _parse_word(self, "fusion", Fusion)
        _parse_word(self, "fine_fusion", Fusion)
        _parse_word(self, "saliency_source", SaliencySource)
        _parse_word(self, "crops_from", CropReference)
        _check(0.0 <= self.min_component_fraction <= 1.0,
               f"InferenceConfig.min_component_fraction must be in [0, 1], got {self.min_component_fraction}")
        _check(0.0 < self.threshold < 1.0, f"InferenceConfig.threshold must be in (0, 1), got {self.threshold}")
        _check(self.max_rounds >= 0, f"InferenceConfig.max_rounds must be >= 0, got {self.max_rounds}")
        _check(0.0 < self.stop_dsc <= 1.0, f"InferenceConfig.stop_dsc must be in (0, 1], got {self.stop_dsc}")
        _check(self.margin >= 0, f"InferenceConfig.margin must be >= 0, got {self.margin}")
        _check(self.batch_size >= 1, f"InferenceConfig.batch_size must be >= 1, got {self.batch_size}")
        _check(self.workers >= 0, f"InferenceConfig.workers must be >= 0 (0 = auto), got {self.workers}")
        _check(self.precision in PRECISIONS,
               f"InferenceConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")


@dataclass(frozen=True)
class StageConfig(_Config):
    """One named training stage (SPEC §3): ``S``, ``I`` or ``J`` for RSTN; ``coarse``/``fine`` for C2F."""

    name: str
    iterations: int
    lr_halve_every: int = 0  # 0 = constant learning rate

    def __post_init__(self) -> None:
        _check(self.name in ("S", "I", "J", "coarse", "fine"),
               f"StageConfig.name must be one of S, I, J, coarse, fine; got {self.name!r}")
        _check(self.iterations >= 0, f"StageConfig {self.name}: iterations must be >= 0, got {self.iterations}")
        _check(self.lr_halve_every >= 0, f"StageConfig {self.name}: lr_halve_every must be >= 0")


def _paper_stages() -> tuple[StageConfig, ...]:
    return (StageConfig("S", 10_000), StageConfig("I", 30_000), StageConfig("J", 40_000, lr_halve_every=10_000))


@dataclass(frozen=True)
class TrainConfig(_Config):
    """Training recipe (SPEC §2.3–2.4, §3). Defaults are the paper's reference schedule.

    ``stages`` is stored as a tuple of dicts in ``to_dict`` output; ``from_dict`` rebuilds them.
    """

    method: Method = Method.RSTN
    stages: tuple[StageConfig, ...] = field(default_factory=_paper_stages)
    optimizer: str = "sgd"
    lr: float = 1e-5  # theta_C; theta_F and eta get lr * fine_lr_factor
    fine_lr_factor: float = 10.0
    momentum: float = 0.99
    weight_decay: float = 5e-4
    unroll: int = 1  # T
    margin: int = 20  # K
    jitter_prob: float = 0.5
    batch_size: int = 1
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 10
    precision: str = "auto"  # fp32, bf16, fp16 or auto (rstn_core.precision); the resolved one is recorded
    convergence_check: bool = True
    # S restarts allowed when the convergence check fails; None = until it converges, as the release
    # does (~5% of its runs restart once); set a number to bound the time a hopeless run can take
    max_restarts: int | None = None
    bias_lr_factor: float = 2.0  # biases: lr x 2 and no weight decay (the released prototxts' lr_mult 2)

    def __post_init__(self) -> None:
        _parse_word(self, "method", Method, TRAINED_METHODS)
        _check(self.optimizer in ("sgd", "adam"),
               f"TrainConfig.optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        _check(self.lr > 0, f"TrainConfig.lr must be > 0, got {self.lr}")
        _check(self.unroll >= 1, f"TrainConfig.unroll (T) must be >= 1, got {self.unroll}")
        _check(self.margin >= 0, f"TrainConfig.margin must be >= 0, got {self.margin}")
        _check(0.0 <= self.jitter_prob <= 1.0, f"TrainConfig.jitter_prob must be in [0, 1], got {self.jitter_prob}")
        _check(self.batch_size >= 1, f"TrainConfig.batch_size must be >= 1, got {self.batch_size}")
        _check(self.checkpoint_every >= 1, f"TrainConfig.checkpoint_every must be >= 1, got {self.checkpoint_every}")
        _check(len(self.stages) > 0, "TrainConfig.stages must not be empty")
        _check(self.max_restarts is None or self.max_restarts >= 0,
               f"TrainConfig.max_restarts must be >= 0 or None (no cap), got {self.max_restarts}")
        _check(self.bias_lr_factor > 0, f"TrainConfig.bias_lr_factor must be > 0, got {self.bias_lr_factor}")
        _check(self.precision in PRECISIONS,
               f"TrainConfig.precision must be one of {PRECISIONS}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["stages"] = [s.to_dict() for s in self.stages]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        if "stages" in data:
            data["stages"] = tuple(
                s if isinstance(s, StageConfig) else StageConfig.from_dict(s) for s in data["stages"]
            )
        return super().from_dict(data)  # type: ignore[return-value]
