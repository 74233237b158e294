"""Pretraining over several workers: Ray Train's TorchTrainer (DDP), CPU workers here.

    .venv/bin/python -m pytest tests/training/test_pretrain_ddp.py -p no:django -q

The loss of a data-parallel SimCLR step is NT-Xent over the *global* batch: each rank projects
its share and gathers every rank's projections (`training.collective`). The first test checks
the gradient that reaches the weights equals one process's on the whole batch, in two real
gloo processes. The others run `run_pretrain` with two Ray Train workers on the session's
local Ray (2 CPUs: one each), with the same stand-in backbone as tests/training/test_pretrain.py.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import ray.cloudpickle
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

# The one-process tests' stand-in backbone; that module registers itself for pickling by value,
# so Ray Train workers need not import it by name.
from tests.training.test_pretrain import save_small, small_conv
from training.collective import LOCAL, Collective
from training.contracts import PretrainSpec
from training.pretrain import result_path, run_pretrain, workers_for
from training.ssl import nt_xent, pretrain_arrays

ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

BATCH, DIM = 8, 6


def spec_for(tmp_path: Path, store, **overrides: object) -> PretrainSpec:
    base = dict(
        items=store.items[:128], cache_dir=store.cache_dir, input_size=28, input_channels=1,
        backbone_path=str(tmp_path / "run" / "backbone.pt"),
        state_path=str(tmp_path / "run" / "state.pt"),
        width=4, epochs=1, batch_size=32, lr=3e-3, flip=False, num_threads=1, num_workers=2,
    )  # fmt: skip
    return PretrainSpec(**(base | overrides))


# --- the distributed loss's gradient ------------------------------------------------------


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(BATCH, DIM, generator=gen), torch.randn(BATCH, DIM, generator=gen)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(DIM, 4)


def _one_rank(rank: int, world: int, port: int, out: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    group = Collective(rank, world)
    a, b = _batch()
    net = DistributedDataParallel(_net())
    rows = group.shard(torch.arange(BATCH))
    z1, z2 = net(a[rows]), net(b[rows])
    loss = nt_xent(group.gather(z1), group.gather(z2), 0.5)
    (loss * world).backward()
    if rank == 0:
        torch.save({"loss": loss.detach(), "grad": net.module.weight.grad.clone()}, out)
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_back_propagate_the_one_process_gradient_of_the_global_batch(tmp_path):
    out = str(tmp_path / "rank0.pt")
    mp.spawn(_one_rank, args=(2, _free_port(), out), nprocs=2, join=True)
    shared = torch.load(out, weights_only=True)
    a, b = _batch()
    alone = _net()
    loss = nt_xent(LOCAL.gather(alone(a)), LOCAL.gather(alone(b)), 0.5)
    loss.backward()
    assert torch.allclose(shared["loss"], loss.detach(), atol=1e-6)
    assert torch.allclose(shared["grad"], alone.weight.grad, atol=1e-6)
    # Without the gather (each rank's own half as its negatives) it is another loss.
    half = nt_xent(alone(a[:4]), alone(b[:4]), 0.5)
    assert not torch.allclose(half, loss, atol=1e-3)


def test_shares_are_equal_and_disjoint():
    rows = torch.arange(12)
    shares = [Collective(r, 3).shard(rows) for r in range(3)]
    assert [s.tolist() for s in shares] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert LOCAL.shard(rows).tolist() == rows.tolist()


def test_how_many_workers():
    spec = PretrainSpec(items=(), cache_dir="", input_size=28, input_channels=1,
                        backbone_path="b", state_path="s")  # fmt: skip
    assert [workers_for(spec, gpus) for gpus in (0, 1, 2, 8)] == [1, 1, 2, 8]
    assert workers_for(PretrainSpec(**{**spec.__dict__, "num_workers": 3}), 0) == 3


def test_a_batch_too_small_to_share_is_refused_with_the_fix(digits):
    spec = PretrainSpec(items=(), cache_dir="", input_size=28, input_channels=1,
                        backbone_path="", state_path="", batch_size=6, width=4)  # fmt: skip
    with pytest.raises(ValueError, match="each of the 4 workers needs at least 2 images"):
        pretrain_arrays(digits.x[:64], spec, make_backbone=small_conv, group=Collective(0, 4))


# --- through Ray Train --------------------------------------------------------------------


def test_two_ray_train_workers_pretrain_resume_and_write_one_backbone(ray_local, store, tmp_path):
    seen = []
    first = run_pretrain(
        spec_for(tmp_path, store), progress=lambda s, f: seen.append((s, f)),
        make_backbone=small_conv, save=save_small,
    )  # fmt: skip
    m = first.metrics
    assert (m["workers"], m["stopped"], m["epochs_run"], m["steps"]) == (2, "epochs", 1, 4)
    assert first.backbone_path.endswith("backbone.pt") and Path(first.backbone_path).is_file()
    assert not result_path(spec_for(tmp_path, store)).exists()  # read, then removed
    assert seen[0][0] == "cache" and seen[-1] == ("done", 1.0)
    # A longer run continues from the state rank 0 wrote after the first epoch.
    second = run_pretrain(
        spec_for(tmp_path, store, epochs=2), make_backbone=small_conv, save=save_small
    )
    m2 = second.metrics
    assert (m2["resumed_from_epoch"], m2["epochs_run"], m2["steps"]) == (1, 2, 8)
    assert len(m2["loss_curve"]) == 2 and m2["loss_curve"][0] == m["loss_curve"][0]
    saved = torch.load(second.backbone_path, weights_only=True)
    assert saved["meta"]["images"] == 128 and saved["meta"]["metrics"]["workers"] == 2
    small_conv(spec_for(tmp_path, store)).load_state_dict(saved["state_dict"])


def test_cancelling_two_workers_stops_both_and_writes_no_backbone(ray_local, store, tmp_path):
    spec = spec_for(tmp_path, store, epochs=500)
    result = run_pretrain(spec, should_stop=lambda: True, make_backbone=small_conv, save=save_small)
    assert result.metrics["stopped"] == "cancelled" and result.backbone_path == ""
    assert result.metrics["epochs_run"] < 500 and result.metrics["workers"] == 2
    assert not Path(spec.backbone_path).exists()
