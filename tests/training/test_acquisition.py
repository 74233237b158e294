"""Acquisition functions on hand-computed cases, batch selection, and cold-start coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.training.conftest import Store
from training import acquisition as acq


def test_least_confidence_is_one_minus_the_top_probability() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(acq.least_confidence(probs), [0.4, 0.0])


def test_margin_is_one_minus_the_gap_between_the_two_best_classes() -> None:
    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.45, 0.45], [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(acq.margin(probs), [0.7, 1.0, 0.0])


def test_entropy_is_log_c_for_uniform_and_zero_for_one_hot() -> None:
    probs = np.array([[0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.0, 0.0]])
    np.testing.assert_allclose(acq.entropy(probs), [math.log(4), 0.0, math.log(2)], atol=1e-9)


def test_bald_is_high_when_dropout_samples_disagree_and_zero_when_they_agree() -> None:
    # Item 0: two confident samples for opposite classes -> H(mean) = log 2, mean H = 0.
    # Item 1: both samples say 50/50 -> aleatoric only, nothing to learn: BALD = 0.
    mc = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])  # (T=2, N=2, C=2)
    np.testing.assert_allclose(acq.bald(mc), [math.log(2), 0.0], atol=1e-9)


def test_random_scores_depend_on_key_and_seed_not_on_batch() -> None:
    keys = [f"k{i}" for i in range(100)]
    whole = acq.random_scores(keys, seed=3)
    np.testing.assert_array_equal(whole[50:], acq.random_scores(keys[50:], seed=3))
    assert not np.array_equal(whole, acq.random_scores(keys, seed=4))
    assert whole.min() >= 0.0 and whole.max() < 1.0


def test_uncertainty_rejects_unknown_strategies() -> None:
    with pytest.raises(ValueError, match="unknown strategy"):
        acq.uncertainty("most_confused", np.ones((1, 2)) / 2)


def test_k_center_greedy_covers_the_far_point_before_the_near_one() -> None:
    points = np.array([[0.0], [1.0], [10.0]])
    np.testing.assert_array_equal(acq.k_center_greedy(points, 3), [0, 2, 1])


def test_k_center_saturation_stops_outliers_outbidding_heavy_points() -> None:
    # Start at 0. Unsaturated, the outlier at 100 wins (0.5 x 100 > 1.0 x 5).
    # With distance capped at 5, the heavier point at 5 wins (1.0 x 5 > 0.5 x 5).
    points = np.array([[0.0], [5.0], [100.0]])
    weights = np.array([2.0, 1.0, 0.5])
    assert acq.k_center_greedy(points, 1, weights=weights, selected=[0])[0] == 2
    assert acq.k_center_greedy(points, 1, weights=weights, selected=[0], saturation=5.0)[0] == 1


def test_typicality_ranks_an_isolated_point_last() -> None:
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 0.1, (50, 2)), [[50.0, 50.0]]])
    t = acq.typicality(points, neighbours=5)
    assert t.argmin() == 50
    assert t.max() == 1.0 and t.min() > 0.0


def test_top_k_strategies_pick_the_highest_scores() -> None:
    scores = np.array([0.1, 0.9, 0.5, 0.7])
    np.testing.assert_array_equal(acq.select(scores, 2, strategy="margin"), [1, 3])


def test_exploration_slice_takes_its_share_of_the_batch() -> None:
    scores = np.linspace(0, 1, 100)  # the best are 99, 98, ...
    batch = acq.select(scores, 10, strategy="entropy", exploration_fraction=0.3, seed=1)
    assert len(set(batch.tolist())) == 10
    assert len(set(batch.tolist()) & set(range(93, 100))) == 7  # the rest came at random


def test_diverse_never_picks_near_duplicates_of_an_uncertain_image() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(200, 16))
    emb[:30] = emb[0] + rng.normal(0, 1e-4, (30, 16))  # 30 near-copies of one hard image
    scores = np.full(200, 0.5)
    scores[:30] = 1.0  # the copies are the most uncertain items in the pool
    batch = acq.select(scores, 10, strategy="diverse", embeddings=emb, seed=0)
    assert len(batch) == 10
    assert np.isin(batch, np.arange(30)).sum() == 1
    top10 = acq.select(scores, 10, strategy="margin")
    assert np.isin(top10, np.arange(30)).sum() == 10  # what plain top-k would have done


def test_diverse_skips_near_copies_of_images_already_labeled() -> None:
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(100, 16))
    emb[:10] = emb[0] + rng.normal(0, 1e-4, (10, 16))  # ten blank frames...
    scores = np.full(100, 0.5)
    scores[:10] = 1.0
    labeled = emb[:1] + 1e-5  # ...and one of them was labeled last round
    batch = acq.select(scores, 10, strategy="diverse", embeddings=emb, labeled_embeddings=labeled)
    assert not np.isin(batch, np.arange(10)).any()


def test_diverse_passes_over_isolated_outliers() -> None:
    rng = np.random.default_rng(1)
    emb = np.vstack([rng.normal(0, 1, (300, 8)) + 5.0, rng.normal(0, 1, (10, 8)) * 40])
    scores = np.concatenate([rng.uniform(0.3, 0.6, 300), np.full(10, 1.0)])
    batch = acq.select(scores, 20, strategy="diverse", embeddings=emb, seed=0)
    assert np.isin(batch, np.arange(300, 310)).sum() <= 1


@pytest.mark.parametrize("n", [0, 1, 2, 5])
def test_tiny_pools_are_selected_without_errors(n: int) -> None:
    rng = np.random.default_rng(0)
    for strategy in ("diverse", "margin", "random"):
        batch = acq.select(
            rng.uniform(size=n), 3, strategy=strategy, embeddings=rng.normal(size=(n, 4)), seed=0
        )
        assert sorted(batch.tolist()) == sorted(set(batch.tolist())) and len(batch) == min(3, n)


def test_rank_is_a_permutation_that_starts_with_the_selected_batch() -> None:
    rng = np.random.default_rng(0)
    scores = rng.uniform(size=500)
    emb = rng.normal(size=(500, 8))
    order = acq.rank(scores, strategy="diverse", embeddings=emb, batch_size=25, seed=2)
    np.testing.assert_array_equal(np.sort(order), np.arange(500))
    batch = acq.select(scores, 25, strategy="diverse", embeddings=emb, seed=2)
    np.testing.assert_array_equal(order[:25], batch)
    tail = scores[order[25:]]
    assert np.all(np.diff(tail) <= 0)
    np.testing.assert_array_equal(acq.priorities(order)[order], np.arange(500))


def test_coverage_order_visits_every_cluster_before_repeating_one() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    points = np.vstack([c + rng.normal(0, 0.3, (40, 2)) for c in centres])
    points = np.vstack([points, [[60.0, 60.0]]])  # one junk frame far from everything
    order = acq.coverage_order(points, limit=None)
    first4 = order[:4]
    assert sorted(first4 // 40) == [0, 1, 2, 3]
    assert 160 not in order[:8]  # plain k-center would have taken the outlier second


def test_cold_start_orders_real_files_for_coverage_and_reports_failures(
    store: Store, tmp_path
) -> None:
    items = list(store.items[:300])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    items.append(type(items[0])("broken", "0" * 64, str(broken)))
    result = acq.cold_start_order(
        items, str(tmp_path / "cache"), input_size=28, input_channels=1, limit=100
    )
    assert result.failed_items == ("broken",)
    assert sorted(result.keys) == sorted(it.key for it in items[:300])
    labels = {it.key: label for it, label in zip(store.items, store.labels, strict=False)}
    first = {labels[k] for k in result.keys[:30]}
    assert len(first) >= 8  # the first 30 labels already span (nearly) every digit


def test_diverse_selection_never_copies_a_large_pool_to_float32():
    """The worker holds a round's embeddings as float16 (3.2 KB per seed_cnn image); select()
    converts a chunk or the candidates at a time, so its own memory is a small fraction of a
    float32 copy of the pool (it used to be 3.3x one: 2 GB for 100,000 images)."""
    import tracemalloc

    n, d = 40_000, 1600
    rng = np.random.default_rng(0)
    emb = np.abs(rng.standard_normal((n, d), dtype=np.float32)).astype(np.float16)
    scores = rng.random(n).astype(np.float32)
    tracemalloc.start()
    try:
        picks = acq.select(scores, 25, strategy="diverse", embeddings=emb, exploration_fraction=0.1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    float32_copy = n * d * 4
    assert peak < 0.75 * float32_copy, f"peak {peak / 2**20:.0f} MiB"
    assert len(set(picks.tolist())) == 25
    same = acq.select(
        scores, 25, strategy="diverse", embeddings=emb.astype(np.float32), exploration_fraction=0.1
    )
    np.testing.assert_array_equal(picks, same)  # float16 storage changes nothing picked
