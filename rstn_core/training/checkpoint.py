"""Training checkpoints: everything needed to resume bit-exactly (SPEC §3).

A checkpoint is one file written atomically (temporary file + ``os.replace``) holding tensors and
plain Python values only, read back with ``torch.load(weights_only=True)``: a file that would
execute code on load is refused by the safe unpickler before anything runs.

Contents: format tag and version, code version, method, view, the model/data/train config dicts,
stage index and name, iterations done in that stage, global step, S restarts, the fine losses the
convergence check needs, model and optimiser (and grad-scaler) state dicts, and the states of the
trainer's two explicit generators: its NumPy ``Generator`` (a bit-generator dict of ints) and its
``torch.Generator`` (a uint8 tensor). Training reads no global random state, so none is saved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rstn_core import __version__
from rstn_core.errors import CheckpointError
from rstn_core.models.bundle import atomic_torch_save, check_format, safe_torch_load

log = logging.getLogger(__name__)

CHECKPOINT_FORMAT = "rstn-checkpoint"
CHECKPOINT_VERSION = 1
LAST_CHECKPOINT = "last.ckpt"


@dataclass
class TrainState:
    """Where training stands: ``iteration`` iterations of ``stages[stage_index]`` are done."""

    stage_index: int = 0
    iteration: int = 0
    global_step: int = 0
    restarts: int = 0
    recent_fine_losses: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"stage_index": self.stage_index, "iteration": self.iteration, "global_step": self.global_step,
                "restarts": self.restarts, "recent_fine_losses": [float(v) for v in self.recent_fine_losses]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainState:
        return cls(int(data["stage_index"]), int(data["iteration"]), int(data["global_step"]),
                   int(data["restarts"]), [float(v) for v in data["recent_fine_losses"]])


def capture_rng(generator: np.random.Generator, torch_generator: torch.Generator) -> dict[str, Any]:
    """The trainer's generator states as plain values and a tensor (safe-loadable)."""
    return {"numpy_generator": generator.bit_generator.state, "torch": torch_generator.get_state()}


def restore_rng(state: dict[str, Any], generator: np.random.Generator, torch_generator: torch.Generator) -> None:
    """Inverse of :func:`capture_rng`: both generators are updated in place. A checkpoint written before the
    trainer had its own torch generator holds torch's global CPU state; a CPU generator takes it up."""
    generator.bit_generator.state = state["numpy_generator"]
    try:
        torch_generator.set_state(state["torch"].cpu())
    except RuntimeError as exc:
        log.warning("the checkpoint's torch random state does not fit a %s generator (%s); dropout draws a "
                    "new stream from here", torch_generator.device, exc)


def save_checkpoint(path: str | Path, *, method: str, view: str, configs: dict[str, dict], train_state: TrainState,
                    model: torch.nn.Module, optimizer: torch.optim.Optimizer | None, generator: np.random.Generator,
                    torch_generator: torch.Generator, scaler_state: dict | None = None) -> Path:
    """Write a checkpoint atomically; ``configs`` holds ``model_config``/``data_config``/``train_config`` dicts."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "code_version": __version__,
        "method": str(method),  # a plain str (a StrEnum's str() is its value): safe-loadable
        "view": str(view),
        "configs": configs,
        "state": train_state.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scaler": scaler_state,
        "rng": capture_rng(generator, torch_generator),
    }
    from rstn_core.atomic import remove_stale_temps

    remove_stale_temps(path)  # 0-byte temporaries of a run that was killed while saving
    return atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint safely and check it is ours; returns the payload (tensors on the CPU)."""
    payload = safe_torch_load(path, "training checkpoint")
    check_format(payload, path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "training checkpoint")
    missing = [k for k in ("configs", "state", "model", "rng", "method", "view") if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: training checkpoint lacks {missing}")
    try:
        payload["train_state"] = TrainState.from_dict(payload["state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: damaged training state: {exc}") from exc
    return payload
