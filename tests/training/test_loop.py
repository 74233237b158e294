"""The pieces `fit` is made of: the step budget, the optimizer and its schedule, one epoch of
steps, and early stopping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from training.contracts import TrainConfig
from training.loop import (
    EarlyStopping,
    StepBudget,
    build_optimizer,
    grad_scaler,
    step_budget,
    train_one_epoch,
)
from training.models import build_model


def test_a_large_label_set_trains_for_its_epochs_and_may_stop_early() -> None:
    # 4,000 labels in batches of 32: 125 steps an epoch, 2,500 in 20 epochs (over 1,000).
    assert step_budget(4000, TrainConfig()) == StepBudget(20, 2500, fixed=False)


def test_a_small_label_set_trains_for_the_minimum_steps_without_early_stopping() -> None:
    # 300 labels: 10 steps an epoch, 200 in 20 epochs (under 1,000): 100 epochs of them.
    assert step_budget(300, TrainConfig()) == StepBudget(100, 1000, fixed=True)


def test_max_steps_fixes_the_budget_whatever_the_number_of_labels() -> None:
    config = TrainConfig(max_steps=200)
    assert step_budget(300, config) == StepBudget(20, 200, fixed=True)
    assert step_budget(100_000, config) == StepBudget(1, 200, fixed=True)


def test_each_ddp_rank_counts_the_steps_of_its_own_shard() -> None:
    # Two ranks: 2,000 labels each, 63 steps an epoch, 1,260 in 20 epochs.
    assert step_budget(4000, TrainConfig(), world_size=2) == StepBudget(20, 1260, fixed=False)
    # Four ranks: 32 steps an epoch, 640 in 20 epochs, under the 1,000 minimum.
    assert step_budget(4000, TrainConfig(), world_size=4) == StepBudget(32, 1000, fixed=True)


def test_fewer_labels_than_ranks_still_make_one_step_an_epoch() -> None:
    config = TrainConfig(epochs=3, min_steps=0)
    assert step_budget(1, config, world_size=4) == StepBudget(3, 3, fixed=False)


def test_an_unknown_optimizer_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="'lamb'"):
        build_optimizer(nn.Linear(2, 2).parameters(), TrainConfig(optimizer="lamb"), total_steps=9)


def test_sgd_is_nesterov_with_the_config_s_momentum_and_weight_decay() -> None:
    config = TrainConfig(optimizer="sgd", momentum=0.8, weight_decay=1e-4)
    optimizer, _ = build_optimizer(nn.Linear(2, 2).parameters(), config, total_steps=10)
    group = optimizer.param_groups[0]
    assert isinstance(optimizer, torch.optim.SGD) and group["nesterov"]
    assert group["momentum"] == 0.8 and group["weight_decay"] == 1e-4


def test_the_learning_rate_warms_up_over_a_tenth_of_the_steps_then_decays_to_zero() -> None:
    optimizer, scheduler = build_optimizer(
        nn.Linear(2, 2).parameters(), TrainConfig(lr=1e-2), total_steps=100
    )
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert lrs[0] == pytest.approx(1e-3) and lrs[9] == pytest.approx(1e-2)
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] < 1e-5


def test_one_epoch_stops_at_its_step_allowance_and_reports_the_steps_taken() -> None:
    config = TrainConfig(batch_size=8)
    model = build_model("seed_cnn", num_classes=2, input_size=12, input_channels=1)
    x = torch.randint(0, 256, (64, 1, 12, 12), dtype=torch.uint8)
    y = torch.arange(64) % 2
    optimizer, scheduler = build_optimizer(model.parameters(), config, total_steps=11)
    gen = torch.Generator().manual_seed(0)
    kwargs = dict(
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=grad_scaler(config, x.device),
        config=config,
        gen=gen,
    )
    loss, steps = train_one_epoch(model, x, y, max_steps=3, **kwargs)
    assert steps == 3 and loss > 0
    assert train_one_epoch(model, x, y, max_steps=100, **kwargs)[1] == 8  # 64 images / 8


def test_early_stopping_restores_the_weights_of_the_lowest_validation_loss() -> None:
    net = nn.Linear(1, 1, bias=False)
    stopping = EarlyStopping(patience=2)
    for weight, val_loss in [(1.0, 0.9), (2.0, 0.5), (3.0, 0.7)]:
        net.weight.data.fill_(weight)
        stopping.update(net, val_loss)
    assert not stopping.exhausted  # one epoch since the best, patience is two
    net.weight.data.fill_(4.0)
    stopping.update(net, 0.6)
    assert stopping.exhausted
    stopping.restore_best(net)
    assert net.weight.item() == 2.0


def test_a_model_never_validated_keeps_its_last_weights() -> None:
    net = nn.Linear(1, 1, bias=False)
    net.weight.data.fill_(5.0)
    EarlyStopping(patience=3).restore_best(net)
    assert net.weight.item() == 5.0
