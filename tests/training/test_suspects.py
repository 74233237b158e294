"""Suspect labels on features: planted flips come first, folds cope with tiny classes, a seed
gives the same ranking, a stop ends the check at a fold boundary.

    .venv/bin/python -m pytest tests/training/test_suspects.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from training.suspects import CheckConfig, check_features, fold_assignment, rank_suspects


def blobs(per_class: int = 40, classes: int = 4, dim: int = 16, seed: int = 0):
    """Well separated Gaussian clusters: every label is predictable from the features."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, dim)) * 4
    y = np.repeat(np.arange(classes), per_class)
    x = centres[y] + rng.normal(0, 1, (len(y), dim))
    return x.astype(np.float32), y


def flip(y: np.ndarray, count: int, classes: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    where = rng.choice(len(y), count, replace=False)
    noisy = y.copy()
    noisy[where] = (y[where] + rng.integers(1, classes, count)) % classes
    return noisy, set(where.tolist())


def test_planted_flips_are_ranked_first_and_flagged():
    x, y = blobs()
    noisy, flipped = flip(y, 8, 4)
    result = check_features(x, noisy, 4)
    assert set(result.ranking()[:8].tolist()) == flipped
    flagged = {s.index for s in result.suspects}
    assert flipped <= flagged
    assert len(flagged - flipped) <= 2  # a clean label flagged now and then, not many
    top = result.suspects[0]
    assert top.index in flipped
    assert top.given == noisy[top.index] and top.predicted == y[top.index]
    assert 0.5 < top.score <= 1.0 and 0.5 < top.probability <= 1.0
    assert result.method == "backbone-head" and result.folds == 5 and result.checked.all()


def test_suspects_are_ordered_by_score_and_scores_are_one_minus_label_quality():
    x, y = blobs()
    noisy, _ = flip(y, 8, 4)
    result = check_features(x, noisy, 4)
    scores = [s.score for s in result.suspects]
    assert scores == sorted(scores, reverse=True)
    p = result.probabilities
    # self-confidence: the model's out-of-sample probability of the given label.
    expected = 1.0 - p[np.arange(len(noisy)), noisy] / p.sum(axis=1)
    assert np.allclose(result.scores, expected, atol=1e-6)


def test_clean_labels_on_separable_data_give_no_suspects():
    x, y = blobs()
    assert check_features(x, y, 4).suspects == ()


def test_the_same_seed_gives_the_same_ranking_and_another_seed_other_folds():
    x, y = blobs()
    noisy, _ = flip(y, 8, 4)
    a = check_features(x, noisy, 4, config=CheckConfig(seed=3))
    b = check_features(x, noisy, 4, config=CheckConfig(seed=3))
    assert a.suspects == b.suspects
    assert np.array_equal(a.scores, b.scores)
    assert not np.array_equal(fold_assignment(noisy, 5, 3)[0], fold_assignment(noisy, 5, 4)[0])


def test_folds_are_stratified_and_a_class_smaller_than_the_folds_is_dealt_round_robin():
    y = np.array([0] * 20 + [1] * 20 + [2] * 3)
    fold, used = fold_assignment(y, 5, seed=0)
    assert used == 5
    for f in range(5):
        assert (y[fold == f] == 0).sum() == 4 and (y[fold == f] == 1).sum() == 4
    # The 3 items of class 2 sit in 3 different folds: each fold that holds one out trains
    # on the other 2.
    assert len(set(fold[y == 2].tolist())) == 3


def test_a_single_label_class_trains_every_fold_and_is_not_checked():
    x, y = blobs(per_class=30, classes=3)
    x = np.concatenate([x, x[:1] + 50])  # a class of its own, far away
    y = np.concatenate([y, [3]])
    result = check_features(x, y, 4)
    assert not result.checked[-1] and result.scores[-1] == 0.0
    assert all(s.index != len(y) - 1 for s in result.suspects)
    assert result.checked[:-1].all()


def test_folds_shrink_to_the_items_there_are_and_a_tiny_set_is_not_checked():
    assert fold_assignment(np.array([0, 0, 1]), 5, 0)[1] == 2  # 2 items can be held out
    assert fold_assignment(np.array([0, 1, 2]), 5, 0)[1] == 0  # none can
    x, y = blobs(per_class=1, classes=3)
    result = check_features(x, y, 3)
    assert result.folds == 0 and result.suspects == () and not result.checked.any()


def test_one_class_alone_has_nothing_to_be_mistaken_for():
    suspects, scores = rank_suspects(np.zeros(6, dtype=int), np.full((6, 2), 0.5))
    assert suspects == () and not scores.any()


def test_a_stop_ends_the_check_at_a_fold_boundary_with_nothing_ranked():
    x, y = blobs()
    seen = []
    result = check_features(
        x, flip(y, 8, 4)[0], 4,
        progress=lambda stage, f: seen.append((stage, f)),
        should_stop=lambda: len(seen) >= 2,
    )  # fmt: skip
    assert result.stopped and result.suspects == () and not result.checked.any()
    assert seen == [("crossfit", 0.2), ("crossfit", 0.4)]


def test_features_that_do_not_match_the_labels_are_refused():
    with pytest.raises(ValueError, match="features must be"):
        check_features(np.zeros((3, 2)), np.zeros(4, dtype=int), 2)
