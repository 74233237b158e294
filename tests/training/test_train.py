"""Metrics on hand cases, deterministic CPU training, and the MNIST acceptance run on Ray."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import CLASSES, N_TRAIN, Digits, Store
from training.batches import affine_augment, epoch_order, shift_augment, stratified_split
from training.contracts import ScoreSpec, TrainConfig, TrainSpec
from training.data import ArrayCache
from training.metrics import classification_metrics, expected_calibration_error
from training.models import load_checkpoint
from training.score import run_scoring
from training.train import fit, run_training, train_from_arrays


def test_metrics_match_a_hand_computed_confusion_matrix() -> None:
    y = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4]])
    m = classification_metrics(y, probs, ("a", "b"))
    assert m["confusion"] == [[1, 1], [1, 2]]
    assert m["classes"] == ["a", "b"]  # the matrix's order, which JSONB would not keep
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["per_class"]["a"] == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    )
    assert m["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
    assert m["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.4, 0.8, 0.7, 0.4])))
    json.dumps(m)  # the worker stores metrics as JSON


def test_ece_is_the_gap_between_confidence_and_accuracy() -> None:
    # Everything predicted with confidence 0.8; 3 of 4 right -> |0.75 - 0.8| = 0.05.
    probs = np.array([[0.8, 0.2]] * 4)
    assert expected_calibration_error(np.array([0, 0, 0, 1]), probs) == pytest.approx(0.05)
    # Perfectly calibrated halves: 0.6-confident and 60% right in one bin, 1.0 and right in another.
    probs = np.array([[0.6, 0.4]] * 5 + [[1.0, 0.0]] * 2)
    y = np.array([0, 0, 0, 1, 1, 0, 0])
    assert expected_calibration_error(y, probs) == pytest.approx(0.0, abs=1e-12)


def test_imbalanced_labels_are_sampled_class_balanced() -> None:
    y = torch.tensor([0] * 900 + [1] * 100)
    order = epoch_order(y, TrainConfig(), torch.Generator().manual_seed(0), 0, 1)
    share = (y[order] == 1).float().mean().item()
    assert 0.4 < share < 0.6
    balanced = torch.tensor([0] * 500 + [1] * 500)
    order = epoch_order(balanced, TrainConfig(), torch.Generator().manual_seed(0), 0, 1)
    assert sorted(order.tolist()) == list(range(1000))  # plain shuffle: every item once


def test_ddp_ranks_get_disjoint_equal_shards() -> None:
    y = torch.arange(10) % 2
    gen = [torch.Generator().manual_seed(0) for _ in range(2)]
    a = epoch_order(y, TrainConfig(), gen[0], 0, 2)
    b = epoch_order(y, TrainConfig(), gen[1], 1, 2)
    assert len(a) == len(b) == 5 and not set(a.tolist()) & set(b.tolist())


def test_shift_augment_moves_pixels_without_changing_the_shape() -> None:
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    moved = shift_augment(x, 2, torch.Generator().manual_seed(3))
    assert moved.shape == x.shape and moved.sum() == 1.0
    assert shift_augment(x, 0, torch.Generator()) is x


def _bar(n: int = 64) -> torch.Tensor:
    """`n` copies of a 28x28 image: a vertical bar, 3 px wide and 16 tall, at the centre."""
    x = torch.zeros(n, 1, 28, 28)
    x[:, 0, 6:22, 13:16] = 1.0
    return x


def test_the_affine_warp_rotates_scales_and_shears_within_its_bounds() -> None:
    x = _bar()
    warped = affine_augment(x, degrees=12, scale=0.1, shear=8, gen=torch.Generator().manual_seed(0))
    assert warped.shape == x.shape and warped.dtype == torch.float32
    # Every copy moved differently, and none lost the bar: its ink stays within what a 10%
    # zoom either way makes of it, and it stays near the centre.
    assert len({tuple(w.flatten().tolist()) for w in warped}) == len(x)
    ink = warped.sum(dim=(1, 2, 3))
    assert ((ink > 48 * 0.9**2 * 0.95) & (ink < 48 * 1.1**2 * 1.05)).all()
    cols = torch.arange(28.0)
    centre = (warped.sum(dim=2)[:, 0] * cols).sum(1) / ink
    assert ((centre - 14).abs() < 1.5).all()
    # Tilted, but by no more than the rotation and shear allow (a bar 16 tall leans at most
    # 8 * tan(12 + 8 degrees) ~ 3 px from top to centre): the top row's ink stays near it.
    top = warped[:, 0, 5:9].sum(dim=1)
    top_centre = (top * cols).sum(1) / top.sum(1).clamp(min=1e-6)
    assert ((top_centre - 14).abs() < 4.5).all() and (top_centre - 14).abs().max() > 0.5


def test_the_affine_warp_is_off_at_zero_and_repeatable_with_a_seed() -> None:
    x = _bar(4)
    assert affine_augment(x, degrees=0, scale=0, shear=0, gen=torch.Generator()) is x
    a = affine_augment(x, degrees=12, scale=0.1, shear=8, gen=torch.Generator().manual_seed(5))
    b = affine_augment(x, degrees=12, scale=0.1, shear=8, gen=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_the_validation_split_is_stratified_and_keeps_every_class_in_train() -> None:
    y = np.array([0] * 50 + [1] * 10 + [2])
    train, val = stratified_split(y, 0.2, seed=0)
    assert sorted(np.bincount(y[val], minlength=3).tolist()) == [0, 2, 10]
    assert set(y[train]) == {0, 1, 2} and not set(train) & set(val)


def test_training_is_deterministic_on_cpu_for_a_fixed_seed(digits: Digits) -> None:
    x, y = digits.train
    config = TrainConfig(max_steps=20, batch_size=32)
    a, ma = fit(x[:300], y[:300], classes=CLASSES, config=config, seed=7)
    b, mb = fit(x[:300], y[:300], classes=CLASSES, config=config, seed=7)
    c, _ = fit(x[:300], y[:300], classes=CLASSES, config=config, seed=8)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], rtol=0, atol=0)
    assert ma["history"] == mb["history"]
    assert not torch.equal(a.fc.weight, c.fc.weight)


def test_early_stopping_ends_a_run_that_stopped_improving(digits: Digits) -> None:
    x, y = digits.train
    config = TrainConfig(epochs=40, patience=2, batch_size=64, lr=3e-2, min_steps=0)
    _, m = fit(x[:200], y[:200], classes=CLASSES, config=config, x_val=x[200:300], y_val=y[200:300])
    assert m["epochs_run"] < 40 and m["evaluated_on"] == "val"
    best = int(np.argmin(m["history"]["val_loss"]))
    assert m["epochs_run"] == best + 1 + config.patience
    assert m["loss"] == pytest.approx(min(m["history"]["val_loss"]))  # best weights restored


def test_a_few_labels_train_for_the_minimum_steps_without_early_stopping(digits: Digits) -> None:
    x, y = digits.train
    # 40 labels: 20 epochs would be 40 steps, and patience would stop on a 10-image val set.
    config = TrainConfig(epochs=20, patience=1, batch_size=20, min_steps=120)
    _, m = fit(x[:40], y[:40], classes=CLASSES, config=config, x_val=x[40:50], y_val=y[40:50])
    assert m["steps"] == 120 and m["epochs_run"] == 60
    assert m["history"]["val_loss"] == []  # no early stopping, no best-epoch pick
    assert m["evaluated_on"] == "val" and m["n_val"] == 10  # still measured on the val set
    _, big = fit(
        x[:400], y[:400], classes=CLASSES, config=config, x_val=x[400:450], y_val=y[400:450]
    )
    assert big["history"]["val_loss"]  # 20 epochs of 20 steps exceed the minimum: epochs rule


def test_few_labels_are_measured_on_a_split_then_the_model_learns_from_all(
    store: Store, tmp_path: Path
) -> None:
    ArrayCache(store.cache_dir, size=28, channels=1).fill(store.items[:400])
    spec = TrainSpec(
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        items=store.items[:60],
        labels=store.labels[:60],
        cache_dir=store.cache_dir,
        checkpoint_path=str(tmp_path / "few.pt"),
        config=TrainConfig(min_steps=100, num_threads=1),  # 20 epochs x 2 steps < 100
        seed=1,
    )
    cpu = torch.device("cpu")
    m = train_from_arrays(spec, [], device=cpu).metrics
    assert (m["refit_on_all"], m["n_train"], m["n_val"], m["evaluated_on"]) == (True, 60, 7, "val")
    held = replace(spec, config=replace(spec.config, refit=False))
    m = train_from_arrays(held, [], device=cpu).metrics
    assert (m["n_train"], m["n_val"]) == (53, 7) and "refit_on_all" not in m
    # Enough labels for the epochs rule: the split stops training early, so the model that
    # ships is the one it picked; nothing is refit.
    big = replace(spec, items=store.items[:400], labels=store.labels[:400])
    big = replace(big, config=replace(big.config, epochs=2, min_steps=20))  # 2 x 12 steps
    m = train_from_arrays(big, [], device=cpu).metrics
    assert m["n_train"] + m["n_val"] == 400 and "refit_on_all" not in m


@pytest.mark.slow
def test_seed_cnn_trained_on_ray_reaches_97_5_percent_on_mnist(
    ray_local: None, store: Store, tmp_path: Path
) -> None:
    """Acceptance: 4,000 real PNG digits in, >= 97.5% on the 1,000 held-out ones."""
    stages: list[tuple[str, float]] = []
    spec = TrainSpec(
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        items=store.items[:N_TRAIN],
        labels=store.labels[:N_TRAIN],
        cache_dir=store.cache_dir,
        checkpoint_path=str(tmp_path / "mnist.pt"),
        seed=0,
    )
    result = run_training(spec, progress=lambda stage, f: stages.append((stage, f)))
    assert result.failed_items == ()
    m = result.metrics
    json.dumps(m)
    assert m["n_train"] + m["n_val"] == N_TRAIN and m["evaluated_on"] == "val"
    assert {"accuracy", "per_class", "confusion", "ece", "epochs_run", "seconds"} <= set(m)
    assert stages[0][0] == "cache" and stages[-1] == ("done", 1.0)
    assert any(s == "train" and 0 < f < 1 for s, f in stages)  # heartbeats while it trains

    scored = run_scoring(
        ScoreSpec(
            checkpoint_path=result.checkpoint_path,
            items=store.items[N_TRAIN:],
            cache_dir=store.cache_dir,
            strategy="margin",
        )
    )
    test_acc = float((scored.predicted == np.array(store.labels[N_TRAIN:])).mean())
    print(
        f"\nMNIST seed_cnn via Ray: test accuracy {test_acc:.4f}, val {m['accuracy']:.4f}, "
        f"ECE {m['ece']:.4f}, {m['epochs_run']} epochs, {m['seconds']:.1f}s"
    )
    assert test_acc >= 0.975
    _, meta = load_checkpoint(result.checkpoint_path)
    assert meta["classes"] == list(CLASSES) and meta["config"]["epochs"] == TrainConfig().epochs
    assert meta["metrics"]["accuracy"] == m["accuracy"]


def test_unreadable_training_images_are_skipped_and_reported(
    ray_local: None, store: Store, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff garbage")
    bad = replace(store.items[0], key="broken", sha256="e" * 64, path=str(broken))
    gone = replace(store.items[1], key="gone", sha256="d" * 64, path=str(tmp_path / "no.png"))
    items = (bad, gone, *store.items[2:202])
    spec = TrainSpec(
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        items=items,
        labels=store.labels[:202],
        cache_dir=store.cache_dir,
        checkpoint_path=str(tmp_path / "small.pt"),
        config=TrainConfig(max_steps=10),
    )
    result = run_training(spec)
    assert sorted(result.failed_items) == ["broken", "gone"]
    assert result.metrics["n_train"] == 200  # measured on a split, then refit on all 200
    assert result.metrics["failed"] == 2


@pytest.mark.slow
def test_ray_train_torch_trainer_path_trains_and_writes_a_checkpoint(
    ray_local: None, store: Store, tmp_path: Path
) -> None:
    spec = TrainSpec(
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        items=store.items[:400],
        labels=store.labels[:400],
        val_items=store.items[400:500],
        val_labels=store.labels[400:500],
        # A semi-supervised round (FixMatch) on this path too: each rank draws its own share.
        unlabeled_items=store.items[500:600],
        cache_dir=store.cache_dir,
        checkpoint_path=str(tmp_path / "ddp.pt"),
        # Two epochs, not the small-set minimum of steps: what is tested is the path.
        config=TrainConfig(epochs=2, min_steps=0, distributed=True, num_workers=1, num_threads=1),
    )
    result = run_training(spec)
    assert result.metrics["world_size"] == 1 and result.metrics["n_val"] == 100
    assert result.metrics["fixmatch"]["unlabeled"] == 100
    assert result.metrics["accuracy"] > 0.5
    model, meta = load_checkpoint(result.checkpoint_path)
    assert meta["arch"] == "seed_cnn" and not math.isnan(meta["metrics"]["loss"])
    assert model.num_classes == 10


def test_a_spec_with_mismatched_labels_is_rejected_before_any_work(store: Store) -> None:
    spec = TrainSpec(
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        items=store.items[:3],
        labels=(0, 1),
        cache_dir=store.cache_dir,
        checkpoint_path="unused.pt",
    )
    with pytest.raises(ValueError, match="3 items but 2 labels"):
        run_training(spec)
