"""The promotion rule on its own: `training.metrics.promotion_verdict`.

.venv/bin/python -m pytest tests/training/test_promotion.py -q
"""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import promotion_verdict


def predictions(n: int, *, active_wrong: list[int], new_wrong: list[int]):
    truth = np.arange(n) % 10
    active, new = truth.copy(), truth.copy()
    active[active_wrong] = (truth[active_wrong] + 1) % 10
    new[new_wrong] = (truth[new_wrong] + 1) % 10
    return truth, active, new


def test_a_loss_of_one_image_in_forty_is_noise_and_the_new_model_goes_in():
    # The active model is right on 38 of 40, the new one on 37: it lost images 5 and 6 and
    # won image 7. P(at least 2 of 3 disagreements against it | equally good) = 0.5.
    truth, active, new = predictions(40, active_wrong=[0, 7], new_wrong=[0, 5, 6])
    verdict = promotion_verdict(truth, active, new)
    assert verdict["promote"] is True
    assert (verdict["lost"], verdict["gained"]) == (2, 1)
    assert verdict["p_value"] == pytest.approx(0.5)
    assert (verdict["active_accuracy"], verdict["new_accuracy"]) == (0.95, 0.925)


def test_a_significant_loss_keeps_the_new_model_out():
    truth, active, new = predictions(40, active_wrong=[0], new_wrong=list(range(8)))
    verdict = promotion_verdict(truth, active, new)
    assert verdict["promote"] is False
    assert (verdict["lost"], verdict["gained"]) == (7, 0)
    assert verdict["p_value"] == pytest.approx(0.5**7, abs=1e-6)


def test_a_model_no_worse_goes_in_whatever_the_test_says():
    truth, active, new = predictions(40, active_wrong=[0, 1, 2], new_wrong=[3, 4, 5])
    assert promotion_verdict(truth, active, new, alpha=1.0)["promote"] is True  # a tie
    truth, active, new = predictions(40, active_wrong=[0, 1], new_wrong=[])
    verdict = promotion_verdict(truth, active, new)
    assert verdict["promote"] is True and verdict["p_value"] == 1.0


def test_alpha_one_keeps_out_any_loss_and_the_tolerance_forgives_a_small_one():
    truth, active, new = predictions(100, active_wrong=[], new_wrong=[0, 1, 2])
    assert promotion_verdict(truth, active, new)["promote"] is True  # p = 0.125
    assert promotion_verdict(truth, active, new, alpha=1.0)["promote"] is False
    assert promotion_verdict(truth, active, new, alpha=1.0, tolerance=0.05)["promote"] is True
    assert promotion_verdict(truth, active, new, alpha=0.2)["promote"] is False
