"""Semi-supervised rounds (FixMatch, training/semi.py): the strong view, the pool sample that a
round learns from, and what a spec's undecodable pool images do. The Ray Train (DDP) path trains
on a pool sample in tests/training/test_train.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from tests.training.conftest import CLASSES, Digits, Store
from training.contracts import TrainConfig, TrainSpec
from training.semi import FixMatch, strong_augment
from training.train import fit, run_training, train_from_arrays

# A few dozen labels and a few hundred pool images: what a project's first rounds look like.
LABELS, POOL = 40, 200
# Few steps for a test: a lower threshold lets a model this young pseudo-label some of the pool.
FEW_STEPS = TrainConfig(epochs=5, min_steps=20, refit=False, num_threads=1, fixmatch_threshold=0.8)


def test_the_strong_view_is_a_different_image_of_the_same_size_and_range() -> None:
    x = torch.randint(0, 256, (16, 3, 20, 20), dtype=torch.uint8)
    a = strong_augment(x, torch.Generator().manual_seed(1))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 255
    assert all(not torch.equal(a[i], x[i].float()) for i in range(len(x)))
    assert torch.equal(a, strong_augment(x, torch.Generator().manual_seed(1)))  # seeded


def test_ddp_ranks_draw_from_disjoint_shares_of_the_pool() -> None:
    pool = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
    cpu = torch.device("cpu")
    shares = [
        FixMatch.for_rank(pool, TrainConfig(), device=cpu, rank=r, world_size=2) for r in (0, 1)
    ]
    a, b = ({int(v) for v in s.unlabeled.flatten()} for s in shares)
    assert not a & b and a | b == set(range(10))
    assert shares[0].total == 10  # the metrics count the whole sample
    assert FixMatch.for_rank(pool[:0], TrainConfig(), device=cpu) is None
    assert FixMatch.for_rank(pool, TrainConfig(fixmatch_mu=0), device=cpu) is None


def test_the_knobs_default_to_the_measured_recipe() -> None:
    config = TrainConfig()
    assert (config.fixmatch_threshold, config.fixmatch_mu, config.fixmatch_weight) == (0.95, 3, 1)


def test_a_round_with_a_pool_sample_learns_from_it_in_the_same_steps(digits: Digits) -> None:
    x, y = digits.train
    _, m = fit(
        x[:LABELS], y[:LABELS], classes=CLASSES, config=FEW_STEPS, seed=3, unlabeled=x[-POOL:]
    )
    assert m["steps"] == FEW_STEPS.min_steps  # the cost stays a supervised round's steps
    used = m["fixmatch"]
    assert (used["unlabeled"], used["threshold"], used["mu"], used["weight"]) == (POOL, 0.8, 3, 1)
    # The model became sure enough of some pool images to train on their pseudo-labels.
    assert used["pseudo_labeled"] > 0.0
    _, supervised = fit(
        x[:LABELS], y[:LABELS], classes=CLASSES, config=replace(FEW_STEPS, min_steps=2), seed=3
    )
    assert "fixmatch" not in supervised


def _broken_pool(store: Store, tmp_path: Path, n: int) -> tuple:
    """`n` pool images of the store, and two more that cannot be read."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    bad = replace(store.items[0], key="pool-broken", sha256="c" * 64, path=str(broken))
    gone = replace(store.items[1], key="pool-gone", sha256="b" * 64, path=str(tmp_path / "no"))
    return (bad, *store.items[LABELS : LABELS + n], gone)


def _spec(store: Store, tmp_path: Path, config: TrainConfig, **kwargs) -> TrainSpec:
    return TrainSpec(
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        items=store.items[:LABELS],
        labels=store.labels[:LABELS],
        cache_dir=store.cache_dir,
        checkpoint_path=str(tmp_path / "semi.pt"),
        config=config,
        **kwargs,
    )


def test_undecodable_pool_images_are_left_out_not_a_failed_run(
    ray_local: None, store: Store, tmp_path: Path
) -> None:
    pool = _broken_pool(store, tmp_path, 50)
    spec = _spec(store, tmp_path, replace(FEW_STEPS, max_steps=4), unlabeled_items=pool)
    result = run_training(spec)
    assert result.failed_items == ()  # every labeled image was read
    m = result.metrics
    assert (m["failed"], m["unlabeled_failed"], m["fixmatch"]["unlabeled"]) == (0, 2, 50)
    # A sample of which nothing can be read leaves a supervised round.
    spec = replace(spec, unlabeled_items=(pool[0], pool[-1]))
    m = train_from_arrays(spec, ["pool-broken", "pool-gone"], device=torch.device("cpu")).metrics
    assert "fixmatch" not in m and (m["failed"], m["unlabeled_failed"]) == (0, 2)
