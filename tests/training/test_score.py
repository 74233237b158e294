"""Scoring an image pool through Ray Data, against the same computation in memory."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import CLASSES, Digits, Store
from training import acquisition
from training.contracts import ScoreSpec, TrainConfig
from training.data import load_items
from training.models import Classifier, checkpoint_meta, load_checkpoint, save_checkpoint
from training.score import run_scoring, score_arrays
from training.train import fit


def small_checkpoint(digits: Digits, path: Path) -> tuple[str, Classifier]:
    """A quickly trained seed_cnn (about 85% on MNIST) saved like run_training saves one."""
    x, y = digits.train
    model, metrics = fit(x[:500], y[:500], classes=CLASSES, config=TrainConfig(max_steps=60))
    meta = checkpoint_meta(
        model,
        arch="seed_cnn",
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        dropout=0.5,
        metrics=metrics,
    )
    save_checkpoint(str(path), model, meta)
    return str(path), model


@pytest.fixture(scope="module")
def checkpoint(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> str:
    return small_checkpoint(digits, tmp_path_factory.mktemp("ckpt") / "model.pt")[0]


# Both ways of scoring: a Ray Data actor pool (large pools) and one warm task (small pools).
PATHS = pytest.mark.parametrize("inline_below", [0, 1_000_000], ids=["actor_pool", "one_task"])


@PATHS
def test_scoring_returns_every_item_once_in_order_with_all_outputs(
    ray_local: None, store: Store, checkpoint: str, inline_below: int
) -> None:
    items = store.items[4000:4600]
    spec = ScoreSpec(
        checkpoint,
        items,
        store.cache_dir,
        strategy="margin",
        batch_size=128,
        inline_below=inline_below,
    )
    progress: list[tuple[str, float]] = []
    result = run_scoring(spec, progress=lambda s, f: progress.append((s, f)))
    n = len(items)
    assert result.keys == tuple(it.key for it in items)
    assert result.probabilities.shape == (n, 10) and result.probabilities.dtype == np.float32
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, atol=1e-5)
    assert result.embeddings.shape == (n, 1600) and result.embeddings.dtype == np.float16
    np.testing.assert_array_equal(result.predicted, result.probabilities.argmax(1))
    np.testing.assert_allclose(result.confidence, result.probabilities.max(1))
    np.testing.assert_array_equal(np.sort(result.priority), np.arange(n))
    assert result.failed_items == ()
    assert any(s == "score" and f < 1 for s, f in progress) and progress[-1] == ("done", 1.0)
    accuracy = (result.predicted == np.array(store.labels[4000:4600])).mean()
    assert accuracy > 0.7


@PATHS
def test_ray_scores_equal_the_in_memory_computation(
    ray_local: None, store: Store, checkpoint: str, inline_below: int
) -> None:
    items = store.items[4600:4800]
    for strategy in ("entropy", "bald", "random"):
        spec = ScoreSpec(
            checkpoint,
            items,
            store.cache_dir,
            strategy=strategy,
            batch_size=64,
            inline_below=inline_below,
        )
        result = run_scoring(spec)
        model, _ = load_checkpoint(checkpoint)
        x, _, _ = load_items(items, cache_dir=store.cache_dir, size=28, channels=1)
        local = score_arrays(
            model,
            x,
            strategy=strategy,
            keys=[it.key for it in items],
            masks=model.dropout_masks(spec.mc_samples, spec.seed),
        )
        np.testing.assert_allclose(result.probabilities, local["probabilities"], atol=1e-5)
        np.testing.assert_allclose(result.scores, local["scores"], atol=1e-5)


def test_bald_separates_epistemic_from_aleatoric_uncertainty(
    digits: Digits, tmp_path: Path
) -> None:
    _, model = small_checkpoint(digits, tmp_path / "m.pt")
    x, _ = digits.test
    out = score_arrays(model, x[:300], strategy="bald", seed=0)
    assert (out["scores"] >= 0).all() and out["scores"].max() > 0
    with torch.no_grad():
        model.dropout.p = 0.0  # no dropout -> every sample identical -> no disagreement
    flat = score_arrays(model, x[:300], strategy="bald", seed=0)
    np.testing.assert_allclose(flat["scores"], 0.0, atol=1e-6)


def test_the_diverse_priority_order_starts_with_a_duplicate_free_batch(
    ray_local: None, store: Store, checkpoint: str
) -> None:
    items = list(store.items[4000:4400])
    items += [replace(items[0], key=f"copy-{i}") for i in range(20)]  # one image, 21 times
    spec = ScoreSpec(
        checkpoint, tuple(items), store.cache_dir, select_size=25, exploration_fraction=0.2
    )
    assert spec.strategy == "diverse"
    result = run_scoring(spec)
    first = set(np.flatnonzero(result.priority < 25).tolist())
    copies = {i for i, k in enumerate(result.keys) if k.startswith("copy-") or k == items[0].key}
    assert len(first) == 25 and len(first & copies) <= 1
    order = np.argsort(result.priority)
    expected = acquisition.rank(
        result.scores,
        strategy="diverse",
        embeddings=result.embeddings,
        batch_size=25,
        exploration_fraction=0.2,
        seed=0,
    )
    np.testing.assert_array_equal(order, expected)


def test_only_candidates_enter_the_batch_and_labeled_images_rank_last(
    ray_local: None, store: Store, checkpoint: str
) -> None:
    items = store.items[4000:4300]
    pool = tuple(it.key for it in items[100:])
    spec = ScoreSpec(checkpoint, items, store.cache_dir, select_size=20, candidates=pool)
    result = run_scoring(spec)
    order = [result.keys[i] for i in np.argsort(result.priority)]
    assert set(order[:200]) == set(pool)  # every candidate before any labeled image
    assert len(result.keys) == 300  # labeled images are still scored (disagreement view)


def test_a_random_subset_of_a_large_pool_can_be_scored(
    ray_local: None, store: Store, checkpoint: str
) -> None:
    spec = ScoreSpec(checkpoint, store.items[:1000], store.cache_dir, sample_fraction=0.1)
    result = run_scoring(spec)
    assert len(result.keys) == 100 and len(set(result.keys)) == 100
    assert set(result.keys) <= {it.key for it in store.items[:1000]}


def test_unreadable_pool_images_are_listed_not_scored(
    ray_local: None, store: Store, checkpoint: str, tmp_path: Path
) -> None:
    broken = tmp_path / "x.png"
    broken.write_bytes(b"nope")
    bad = replace(store.items[0], key="bad", sha256="c" * 64, path=str(broken))
    result = run_scoring(ScoreSpec(checkpoint, (bad, *store.items[1:11]), store.cache_dir))
    assert result.failed_items == ("bad",) and len(result.keys) == 10
