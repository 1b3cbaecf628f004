"""Several processes / GPUs with torch.distributed (SPEC §3): launched by ``torchrun``.

``torchrun --nproc-per-node 4 -m rstn_core.cli train ...`` sets RANK, WORLD_SIZE and LOCAL_RANK;
:func:`init_distributed` reads them, joins the process group (nccl on CUDA, gloo on the CPU) and
picks this rank's device. Each rank samples its own windows (its numpy generator is seeded with
``(seed, rank)``), DDP averages the gradients, and only rank 0 writes checkpoints, logs and bundles.
The three views are independent jobs.

How batch and learning rate scale: with N processes each rank draws ``batch_size`` windows per
iteration and DDP averages the N gradients, so one update sees an effective batch of
``N x batch_size`` at the *same* learning rate and the same number of iterations: N times the
samples of a single-GPU run, with a less noisy gradient, not N times the step. Nothing is rescaled
automatically. To reproduce the paper's run (batch 1, 80k iterations per view) use one GPU per
view (the views are independent: three jobs), not DDP. With DDP, either keep lr and iterations
(more samples, same number of updates) or follow the linear-scaling rule yourself (lr x N and
iterations / N: same samples, fewer updates; untested with the paper's SGD momentum 0.99).

Decisions that depend on the losses are taken collectively: the S-stage convergence check
all-reduces its statistic (:func:`all_reduce_mean`) so every rank restarts or goes on together,
and weights re-initialised for a restart are broadcast from rank 0 (:func:`broadcast_module`), so
the replicas never diverge and no rank waits in a collective the others skipped.
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


def all_reduce_mean(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise mean of ``values`` over the ranks (identical on every rank); itself when not distributed.

    Every rank must pass a list of the same length (the same number of iterations: true in lockstep DDP).
    """
    if not (info.enabled and dist.is_initialized()):
        return list(values)
    length = torch.tensor([len(values)], dtype=torch.float64)
    dist.all_reduce(length, op=dist.ReduceOp.MAX)
    if int(length.item()) != len(values):
        raise RuntimeError(f"rank {info.rank}: {len(values)} values to average, another rank has {int(length.item())}")
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return (tensor / info.world_size).tolist()


def broadcast_module(module: nn.Module, info: DistInfo, src: int = 0) -> None:
    """Copy rank ``src``'s parameters and buffers into ``module`` on every rank (in place); no-op alone."""
    if not (info.enabled and dist.is_initialized()):
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, src=src)


def barrier(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.barrier()


def shutdown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
