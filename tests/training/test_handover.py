"""The hand-over from typicality-first picking (TypiClust) to the project's strategy.

.venv/bin/python -m pytest tests/training/test_handover.py -p no:django -q
"""

from __future__ import annotations

import numpy as np
import pytest

from training import acquisition, handover
from training.handover import TYPICAL, UNCERTAIN


@pytest.mark.parametrize(
    ("labels", "classes", "per_class", "expected"),
    [
        (0, 10, 5, TYPICAL),  # nothing labeled: nothing to be uncertain with
        (49, 10, 5, TYPICAL),  # one below the threshold
        (50, 10, 5, UNCERTAIN),  # at it
        (51, 10, 5, UNCERTAIN),
        (3, 10, 5, TYPICAL),  # more classes than labels
        (9, 1, 5, TYPICAL),  # one class counts as two
        (10, 1, 5, UNCERTAIN),
        (0, 0, 5, TYPICAL),  # a project with no classes yet
        (0, 10, 0, UNCERTAIN),  # threshold 0: the strategy from the first round
        (44, 10, 4.5, TYPICAL),  # fractional thresholds
        (45, 10, 4.5, UNCERTAIN),
    ],
)
def test_picker_is_typical_below_labels_per_class_and_uncertain_from_it(
    labels, classes, per_class, expected
):
    assert handover.picker(labels=labels, classes=classes, labels_per_class=per_class) == expected


def test_picker_defaults_to_the_measured_threshold_and_refuses_negatives():
    at = handover.HANDOVER_LABELS_PER_CLASS
    assert handover.picker(labels=int(at * 10) - 1, classes=10) == TYPICAL
    assert handover.picker(labels=int(np.ceil(at * 10)), classes=10) == UNCERTAIN
    for bad in ({"labels": -1, "classes": 3}, {"labels": 1, "classes": -3}):
        with pytest.raises(ValueError, match=">= 0"):
            handover.picker(**bad)
    with pytest.raises(ValueError, match="labels_per_class"):
        handover.picker(labels=1, classes=3, labels_per_class=-1)


def blobs(centres: int = 6, per: int = 40, dim: int = 8, seed: int = 0):
    """Well-separated Gaussian blobs: (points, blob of each point, the centres)."""
    rng = np.random.default_rng(seed)
    centre = rng.standard_normal((centres, dim)) * 10
    which = np.repeat(np.arange(centres), per)
    return centre[which] + rng.standard_normal((len(which), dim)), which, centre


def test_typiclust_picks_one_typical_image_of_each_uncovered_cluster():
    x, which, centre = blobs()
    labeled = centre[:3] + 0.1  # blobs 0-2 are covered
    picks = handover.typiclust(x, labeled, 3, seed=0)
    assert sorted(which[picks]) == [3, 4, 5]
    for p in picks:  # typical: nearer its blob's centre than most of its blob
        members = np.flatnonzero(which == which[p])
        dist = np.linalg.norm(x[members] - centre[which[p]], axis=1)
        assert np.linalg.norm(x[p] - centre[which[p]]) <= np.quantile(dist, 0.25)


def test_typiclust_covers_every_cluster_before_any_twice_and_is_deterministic_per_seed():
    x, which, _ = blobs()
    picks = handover.typiclust(x, None, 6, seed=3)
    assert sorted(which[picks]) == [0, 1, 2, 3, 4, 5]
    assert np.array_equal(picks, handover.typiclust(x, None, 6, seed=3))
    assert len(handover.typiclust(x, None, 0, seed=3)) == 0
    assert len(set(handover.typiclust(x[:5], None, 9, seed=0))) == 5  # asks more than the pool


def test_typiclust_select_keeps_the_exploration_share_random_and_spread():
    x = blobs()[0]
    scores = np.zeros(len(x))
    chosen = handover.typiclust_select(
        scores, 10, embeddings=x, exploration_fraction=0.2, seed=1, labeled_embeddings=None
    )
    assert len(chosen) == 10 and len(set(chosen)) == 10
    typical = handover.typiclust(x, None, 8, seed=1)
    explore = [c for c in chosen if c not in set(typical)]
    assert len(explore) == 2
    assert set(typical) <= set(chosen)
    assert 0 < list(chosen).index(explore[0]) < 9  # interleaved, not appended
    again = handover.typiclust_select(scores, 10, embeddings=x, exploration_fraction=0.2, seed=1)
    assert np.array_equal(chosen, again)
    with pytest.raises(ValueError, match="embeddings"):
        handover.typiclust_select(scores, 10, embeddings=None)


def test_handover_select_picks_typical_while_labels_are_few_and_the_strategy_after():
    x, which, centre = blobs()
    rng = np.random.default_rng(0)
    scores = rng.random(len(x))
    labeled = centre[:3] + 0.1
    kwargs = {"strategy": "margin", "embeddings": x, "labeled_embeddings": labeled, "seed": 0}
    few, used = handover.handover_select(scores, 3, labels=3, classes=6, **kwargs)
    assert used == TYPICAL and sorted(which[few]) == [3, 4, 5]
    many, used = handover.handover_select(scores, 3, labels=30, classes=6, **kwargs)
    assert used == UNCERTAIN
    assert np.array_equal(many, acquisition.select(scores, 3, **kwargs))
    assert np.array_equal(many, np.argsort(-scores)[:3])  # margin: the top scores


def test_rank_puts_the_typical_batch_first_then_the_rest_by_score():
    x, which, _ = blobs()
    scores = np.random.default_rng(1).random(len(x))
    order, used = handover.rank(
        scores, picker=TYPICAL, strategy="diverse", embeddings=x, batch_size=6, seed=0
    )
    assert used == TYPICAL
    assert sorted(order) == list(range(len(x)))
    assert sorted(which[order[:6]]) == [0, 1, 2, 3, 4, 5]
    assert np.all(np.diff(scores[order[6:]]) <= 0)
    same, used = handover.rank(
        scores, picker=UNCERTAIN, strategy="diverse", embeddings=x, batch_size=6, seed=0
    )
    assert used == UNCERTAIN
    expected = acquisition.rank(scores, strategy="diverse", embeddings=x, batch_size=6, seed=0)
    assert np.array_equal(same, expected)
    _, used = handover.rank(scores, picker=TYPICAL, strategy="random", embeddings=x, batch_size=6)
    assert used == UNCERTAIN  # random order stays random
    with pytest.raises(ValueError, match="picker"):
        handover.rank(scores, picker="typicality", strategy="diverse", embeddings=x)


def test_rank_clusters_a_sample_of_a_large_pool(monkeypatch):
    monkeypatch.setattr(handover, "TYPICLUST_SAMPLE", 60)
    x = blobs(per=100)[0]
    scores = np.zeros(len(x))
    order, used = handover.rank(
        scores, picker=TYPICAL, strategy="diverse", embeddings=x, batch_size=6, seed=0
    )
    sample = np.sort(np.random.default_rng(0).choice(len(x), 60, replace=False))
    assert used == TYPICAL and set(order[:6]) <= set(sample)
    assert sorted(order) == list(range(len(x)))
