"""The interval the dashboard puts around an accuracy measured on few labels:
`training.metrics.accuracy_interval` (Wilson), checked against scipy's."""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from training.metrics import accuracy_interval


@pytest.mark.parametrize(("correct", "n"), [(5, 5), (0, 5), (4, 5), (27, 30), (950, 1000), (1, 1)])
def test_it_is_the_wilson_interval(correct, n):
    expected = binomtest(correct, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = accuracy_interval(correct, n)
    assert low == pytest.approx(expected.low, abs=1e-3)
    assert high == pytest.approx(expected.high, abs=1e-3)


def test_five_of_five_is_far_from_certain_and_a_thousand_narrows_it():
    low, high = accuracy_interval(5, 5)
    assert high == 1.0 and 0.5 < low < 0.6  # 100% on 5 labels: anywhere from 57% up
    low, high = accuracy_interval(950, 1000)
    assert 0.93 < low < 0.95 < high < 0.97


@pytest.mark.parametrize(("correct", "n"), [(1, 0), (6, 5), (-1, 5)])
def test_impossible_counts_are_refused(correct, n):
    with pytest.raises(ValueError, match="correct <= n"):
        accuracy_interval(correct, n)
