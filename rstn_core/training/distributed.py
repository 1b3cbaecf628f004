"""Several processes / GPUs with torch.distributed (SPEC §3): launched by ``torchrun``.

``torchrun --nproc-per-node 4 -m rstn_core.cli train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
:func:`init_distributed` reads them, joins the process group (nccl on CUDA, gloo on the CPU) and
picks this rank's device. Each rank samples its own windows (its numpy generator is seeded with
``(seed, rank)``), DDP averages the gradients, and only rank 0 writes checkpoints, logs and bundles.
The three views are independent jobs.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank from torchrun's environment (defaults: a single process)."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as exc:
        raise ValueError(f"bad torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}") from exc


def init_distributed(device: str | torch.device = "cpu") -> tuple[DistInfo, torch.device]:
    """Join the process group when WORLD_SIZE > 1; returns this rank's info and device.

    On CUDA the device becomes ``cuda:LOCAL_RANK`` and the backend nccl; otherwise gloo.
    """
    info = env_info()
    device = torch.device(device)
    if device.type == "cuda" and info.enabled:
        device = torch.device("cuda", info.local_rank)
        torch.cuda.set_device(device)
    if info.enabled and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
        log.info("rank %d/%d joined the %s process group on %s", info.rank, info.world_size, backend, device)
    return info, device


def wrap_ddp(module: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DDP around ``module`` when distributed (stages use different parameter subsets: unused allowed)."""
    if not info.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
