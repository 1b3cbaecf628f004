import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from rstn_core.config import DataConfig, StageConfig
from rstn_core.models.rstn import build_model
from rstn_core.training.distributed import init_distributed, shutdown
from rstn_core.training.loop import train_view
from rstn_core.training.recipes import get_recipe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str, restart: bool = False) -> None:
    import sys

    sys.path.insert(0, os.path.dirname(__file__))
    from rstn_training_synthetic import blob_windows

    torch.set_num_threads(1)
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    info, device = init_distributed("cpu")
    recipe = get_recipe("tiny")
    tc = recipe.train.replace(stages=(StageConfig("S", 2), StageConfig("J", 1)), checkpoint_every=1)
    if restart:  # a 2-iteration S never passes the check: one restart, re-initialised per rank's own RNG
        tc = tc.replace(convergence_check=True, max_restarts=1)
    torch.manual_seed(0)
    model = build_model("rstn", recipe.model)
    result = train_view(model, blob_windows(4, h=17, w=19, seed=rank), view="axial", model_config=recipe.model,
               data_config=DataConfig(), train_config=tc, out_dir=out, device=device, dist_info=info,
               progress=False)
    torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    torch.save({"restarts": result.state.restarts, "converged_s": result.converged_s},
               os.path.join(out, f"rank{rank}_state.pt"))
    shutdown(info)


@pytest.mark.distributed
@pytest.mark.slow
def test_two_gloo_processes_keep_identical_weights(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = build_model("rstn", get_recipe("tiny").model).state_dict()
    assert any(not torch.equal(a[k], start[k]) for k in a)  # it trained
    assert (tmp_path / "last.ckpt").exists() and (tmp_path / "metrics.jsonl").exists()  # rank 0 wrote


@pytest.mark.distributed
@pytest.mark.slow
def test_an_s_restart_keeps_two_gloo_processes_in_step(tmp_path):
    """Both ranks take the same restart decision (all-reduced statistic) and continue from rank 0's
    re-initialised weights (broadcast): the replicas stay identical and nobody hangs."""
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path), True), nprocs=2, join=True)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    states = [torch.load(tmp_path / f"rank{r}_state.pt", weights_only=True) for r in (0, 1)]
    assert states[0] == states[1] == {"restarts": 1, "converged_s": False}
