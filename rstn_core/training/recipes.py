"""Named training recipes (SPEC §3): a model preset plus a TrainConfig, as plain functions.

* ``paper``: the released code's schedule for NIH (batch 1): S 10k, I 30k, J 40k iterations,
  SGD momentum 0.99, weight decay 5e-4 (none on biases), lr 1e-5 for theta_C and 10x for theta_F
  and eta, J halving every 10k, the convergence check after S; full-width FCN-8s (GPU).
* ``cpu-small``: a laptop recipe with the ``cpu-small`` model (width 1/16, dropout 0 — at this width
  dropout 0.5 mostly slows learning): Adam, lr 1e-3 for every part (fine_lr_factor 1: Adam already
  adapts step sizes), S 400, I 400, J 400 (J halving every 200), batch 2, margin K = 20,
  no convergence check (its thresholds belong to the paper schedule). It keeps the three stages.
* ``tiny``: the smallest model and a few iterations per stage, for tests and smoke runs only.

Stage iterations can be overridden (``with_iterations``); the C2F method gets the stages
``coarse`` and ``fine`` with the same budget (S+I+J split evenly).
"""

from __future__ import annotations

from dataclasses import dataclass

from rstn_core.config import ModelConfig, StageConfig, TrainConfig


@dataclass(frozen=True)
class Recipe:
    name: str
    model: ModelConfig
    train: TrainConfig
    description: str


def _stages(method: str, s: int, i: int, j: int, halve: int) -> tuple[StageConfig, ...]:
    if method == "c2f":
        half = (s + i + j) // 2
        return (StageConfig("coarse", half), StageConfig("fine", half))
    return (StageConfig("S", s), StageConfig("I", i), StageConfig("J", j, lr_halve_every=halve))


def paper(method: str = "rstn") -> Recipe:
    return Recipe("paper", ModelConfig.from_preset("paper"),
                  TrainConfig(method=method, stages=_stages(method, 10_000, 30_000, 40_000, 10_000)),
                  "the released code's NIH schedule: SGD 0.99, lr 1e-5 (x10 fine), S 10k / I 30k / J 40k")


def cpu_small(method: str = "rstn") -> Recipe:
    return Recipe("cpu-small", ModelConfig.from_preset("cpu-small", dropout=0.0),
                  TrainConfig(method=method, stages=_stages(method, 400, 400, 400, 200), optimizer="adam",
                              lr=1e-4, fine_lr_factor=1.0, weight_decay=0.0, batch_size=2,
                              checkpoint_every=100, log_every=5, amp=True, convergence_check=False),
                  "laptop CPU: width 1/16, Adam 1e-3, S/I/J 400 iterations each, batch 2")


def tiny(method: str = "rstn") -> Recipe:
    return Recipe("tiny", ModelConfig.from_preset("tiny", dropout=0.0),
                  TrainConfig(method=method, stages=_stages(method, 4, 4, 4, 2), optimizer="adam", lr=1e-3,
                              fine_lr_factor=1.0, weight_decay=0.0, batch_size=1, checkpoint_every=2, log_every=1,
                              margin=8, convergence_check=False),
                  "smoke test: width 1/32, 4 iterations per stage")


RECIPES = {"paper": paper, "cpu-small": cpu_small, "tiny": tiny}


def get_recipe(name: str, method: str = "rstn") -> Recipe:
    """The named recipe for ``method`` ('rstn' or 'c2f')."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name](method)


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
