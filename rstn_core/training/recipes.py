"""Named training recipes (SPEC §3): a model preset plus a TrainConfig, as plain functions.

* ``paper``: the released code's schedule for NIH (batch 1): S 10k, I 30k, J 40k iterations,
  SGD momentum 0.99, weight decay 5e-4 (biases: lr x 2, no decay), lr 1e-5 for theta_C and 10x
  for theta_F and eta, J halving every 10k, the convergence check after S; full-width FCN-8s
  (GPU, from ImageNet VGG16 weights: ``rstn train`` refuses random weights unless asked).
  C2F gets its own released budget (Zhou et al.'s ``run.sh``): coarse 80k at 1e-5, fine 60k at
  1e-4 (lr 1e-5 x fine_lr_factor 10), constant learning rate.
* ``cpu-small``: a laptop recipe with the ``cpu-small`` model (width 1/16, dropout 0 — at this width
  dropout 0.5 mostly slows learning): Adam, lr 1e-4 for every part (fine_lr_factor 1: Adam already
  adapts step sizes; biases x 2 as everywhere), S 400, I 400, J 400 (J halving every 200), batch 2,
  margin K = 20, no convergence check (its thresholds belong to the paper schedule). It keeps the
  three stages.
* ``tiny``: the smallest model and a few iterations per stage, for tests and smoke runs only.

On the CPU recipes C2F gets matched updates: each of its nets is updated as often as RSTN's
(RSTN's coarse and fine nets both learn in S, I and J), so coarse = fine = S + I + J. Stage
iterations can be overridden (``with_iterations``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rstn_core.config import ModelConfig, StageConfig, TrainConfig
from rstn_core.types import Method


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ModelConfig
    train: TrainConfig
    description: str


PAPER_C2F_STAGES = (("coarse", 80_000), ("fine", 60_000))  # Zhou et al.'s released run.sh


def _stages(method: Method, s: int, i: int, j: int, halve: int) -> tuple[StageConfig, ...]:
    """RSTN's S/I/J, or C2F with matched updates: each of its nets as many as RSTN's (S + I + J)."""
    if method is Method.C2F:
        return (StageConfig("coarse", s + i + j), StageConfig("fine", s + i + j))
    return (StageConfig("S", s), StageConfig("I", i), StageConfig("J", j, lr_halve_every=halve))


def paper(method: Method = Method.RSTN) -> Recipe:
    if method is Method.C2F:
        stages = tuple(StageConfig(name, n) for name, n in PAPER_C2F_STAGES)
        text = "Zhou et al.'s released C2F budget: SGD 0.99, coarse 80k at 1e-5, fine 60k at 1e-4"
    else:
        stages = _stages(method, 10_000, 30_000, 40_000, 10_000)
        text = "the released code's NIH schedule: SGD 0.99, lr 1e-5 (x10 fine), S 10k / I 30k / J 40k"
    return Recipe("paper", ModelConfig.from_preset("paper"), TrainConfig(method=method, stages=stages), text)


def cpu_small(method: Method = Method.RSTN) -> Recipe:
    return Recipe("cpu-small", ModelConfig.from_preset("cpu-small", dropout=0.0),
                  TrainConfig(method=method, stages=_stages(method, 400, 400, 400, 200), optimizer="adam",
                              lr=1e-4, fine_lr_factor=1.0, weight_decay=0.0, batch_size=2,
                              checkpoint_every=100, log_every=5, convergence_check=False),
                  "laptop CPU: width 1/16, Adam 1e-4, S/I/J 400 iterations each (C2F 1200/1200), batch 2")


def tiny(method: Method = Method.RSTN) -> Recipe:
    return Recipe("tiny", ModelConfig.from_preset("tiny", dropout=0.0),
                  TrainConfig(method=method, stages=_stages(method, 4, 4, 4, 2), optimizer="adam", lr=1e-3,
                              fine_lr_factor=1.0, weight_decay=0.0, batch_size=1, checkpoint_every=2, log_every=1,
                              margin=8, convergence_check=False),
                  "smoke test: width 1/32, 4 iterations per stage")


RECIPES = {"paper": paper, "cpu-small": cpu_small, "tiny": tiny}


def get_recipe(name: str, method: Method | str = Method.RSTN) -> Recipe:
    """The named recipe for ``method`` (RSTN or C2F; a string is parsed here)."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name](Method.parse(method))


def with_iterations(config: TrainConfig, iterations: dict[str, int]) -> TrainConfig:
    """Override stage iterations by name, e.g. ``{"S": 50, "J": 20}``; unknown names are refused."""
    names = {s.name for s in config.stages}
    unknown = sorted(set(iterations) - names)
    if unknown:
        raise ValueError(f"no stage named {unknown} in this recipe (stages: {sorted(names)})")
    stages = tuple(s.replace(iterations=int(iterations[s.name])) if s.name in iterations else s
                   for s in config.stages)
    return config.replace(stages=stages)


def select_stages(config: TrainConfig, names: list[str]) -> TrainConfig:
    """Keep only the named stages (in the recipe's order), e.g. ``["I", "J"]`` to skip S."""
    known = [s.name for s in config.stages]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown stages {unknown}; this recipe has {known}")
    return config.replace(stages=tuple(s for s in config.stages if s.name in names))
