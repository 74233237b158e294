"""The pieces `train.fit` is made of, in the order it uses them (the shape of torchvision's
classification reference): seeding, the step budget, the optimizer and its schedule, one
epoch of optimizer steps, and early stopping on the validation loss.

    .venv/bin/python -m pytest tests/training/test_loop.py -p no:django -q
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.batches import augment, epoch_order, one_cycle
from training.contracts import TrainConfig
from training.inference import bf16_ok
from training.semi import FixMatch


def seed_everything(seed: int) -> None:
    """Same seed, same CPU, same thread count -> bit-identical weights."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass(frozen=True)
class StepBudget:
    """How long a training set of a given size trains."""

    epochs: int  # passes over this rank's shard, at most
    total_steps: int  # optimizer steps, at most; the learning-rate schedule spans exactly these
    fixed: bool  # True: every step is taken, no early stopping (see `TrainConfig.min_steps`)


def step_budget(n: int, config: TrainConfig, world_size: int = 1) -> StepBudget:
    """The budget for `n` training images: `max_steps` when set; else `epochs` epochs, unless
    that is fewer steps than `min_steps`, which small label sets then train for instead."""
    steps_per_epoch = math.ceil(max(1, n // world_size) / config.batch_size)
    if config.max_steps > 0:
        epochs = math.ceil(config.max_steps / steps_per_epoch)
        return StepBudget(epochs, config.max_steps, fixed=True)
    if config.epochs * steps_per_epoch < config.min_steps:
        epochs = math.ceil(config.min_steps / steps_per_epoch)
        return StepBudget(epochs, config.min_steps, fixed=True)
    return StepBudget(config.epochs, config.epochs * steps_per_epoch, fixed=False)


def build_optimizer(
    params: Iterator[nn.Parameter], config: TrainConfig, *, total_steps: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimizer `config` names and its one-cycle schedule over `total_steps` steps."""
    if config.optimizer == "adamw":
        optimizer: torch.optim.Optimizer = torch.optim.AdamW(
            params, lr=config.lr, weight_decay=config.weight_decay
        )
    elif config.optimizer == "sgd":
        optimizer = torch.optim.SGD(
            params,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=True,
        )
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}; use 'adamw' or 'sgd'")
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(total_steps))


def grad_scaler(config: TrainConfig, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for fp16 autocast, the only precision that underflows; bf16 needs none."""
    enabled = config.amp and device.type == "cuda" and not bf16_ok(device)
    return torch.amp.GradScaler(device.type, enabled=enabled)


def train_one_epoch(
    net: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    config: TrainConfig,
    gen: torch.Generator,
    max_steps: int,
    rank: int = 0,
    world_size: int = 1,
    semi: FixMatch | None = None,
) -> tuple[float, int]:
    """One pass (or `max_steps` steps) over this rank's shard; returns (mean loss, steps).
    With `semi`, each step also learns from pool images (FixMatch) and the loss is its sum."""
    net.train()
    device = x.device
    amp_dtype = torch.bfloat16 if bf16_ok(device) else torch.float16
    use_amp = config.amp and device.type == "cuda"
    order = epoch_order(y, config, gen, rank, world_size).to(device)
    total, steps = 0.0, 0
    for start in range(0, len(order), config.batch_size):
        if steps >= max_steps:
            break
        idx = order[start : start + config.batch_size]
        xb = augment(x[idx], config, gen)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
            if semi is None:
                loss = F.cross_entropy(net(xb), y[idx], label_smoothing=config.label_smoothing)
            else:
                loss = semi.loss(net, xb, y[idx], gen, label_smoothing=config.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        total += loss.item()
        steps += 1
    return total / max(steps, 1), steps


class EarlyStopping:
    """Keeps the weights with the lowest validation loss and counts the epochs since them."""

    def __init__(self, patience: int) -> None:
        self.patience = patience  # epochs without a lower validation loss before stopping
        self.best_loss = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    def update(self, model: nn.Module, val_loss: float) -> None:
        if val_loss < self.best_loss:
            self.best_loss, self.stale = val_loss, 0
            self.best_state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1

    @property
    def exhausted(self) -> bool:
        return self.stale >= self.patience

    def restore_best(self, model: nn.Module) -> None:
        """Load the best weights seen; a model never validated keeps its last ones."""
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
