"""What the ranks of a data-parallel run share, for loops that also run alone: `LOCAL` (one
process: every call is the identity) or `Collective(rank, world_size)` inside a
torch.distributed group (Ray Train's TorchTrainer sets one up: gloo on CPU, NCCL on GPUs).

    .venv/bin/python -m pytest tests/training/test_pretrain_ddp.py -p no:django -q
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

# Why a loop stops, as codes the ranks can agree on with one MAX: the most serious wins.
GO, BUDGET, CANCELLED = 0, 1, 2
STOP_REASONS = {BUDGET: "budget", CANCELLED: "cancelled"}


@dataclass(frozen=True)
class Collective:
    rank: int = 0
    world_size: int = 1

    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous share of a global batch's row indices (equal shares; the
        caller sizes the global batch as a multiple of world_size)."""
        per = len(rows) // self.world_size
        return rows[self.rank * per : (self.rank + 1) * per]

    def gather(self, z: torch.Tensor) -> torch.Tensor:
        """Every rank's `z` stacked in rank order, as float32. Only this rank's rows carry
        gradients, so a loss on the whole batch, scaled by world_size and averaged over the
        ranks by DDP, back-propagates exactly the gradient of that loss in one process."""
        z = z.float()
        if self.world_size == 1:
            return z
        parts = [torch.empty_like(z) for _ in range(self.world_size)]
        dist.all_gather(parts, z.detach().contiguous())
        parts[self.rank] = z
        return torch.cat(parts)

    def agree(self, code: int, device: torch.device) -> int:
        """The largest of every rank's stop code (GO, BUDGET, CANCELLED): a rank that sees a
        cancel or the end of the time budget stops every rank at the same step, where a rank
        stopping alone would leave the others waiting in a collective forever."""
        if self.world_size == 1:
            return code
        flag = torch.tensor([code], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())


LOCAL = Collective()
