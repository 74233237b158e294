"""`manage.py simulate --variants`: how each name collects labels and trains its projects."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from labeling.learning.management.commands._simulate_crowd import parse_variant


def test_fixmatch_is_the_clean_oracle_with_semi_supervised_rounds():
    fixmatch, clean = parse_variant("fixmatch"), parse_variant("clean")
    assert fixmatch.semi and not clean.semi
    assert (fixmatch.overlap, fixmatch.crowd, fixmatch.review) == (1, False, False)
    assert fixmatch.name == "fixmatch"


def test_any_variant_can_train_semi_supervised():
    reviewed = parse_variant("noisy+review+fixmatch")
    assert (reviewed.crowd, reviewed.review, reviewed.semi) == (True, True, True)
    weighted = parse_variant("weighted3+fixmatch")
    assert (weighted.overlap, weighted.method, weighted.semi) == (3, "weighted", True)
    assert not parse_variant("noisy+review").semi


@pytest.mark.parametrize("name", ["fixmatch+fixmatch", "fixmatch+clean", "clean+"])
def test_a_misspelt_variant_is_refused(name):
    with pytest.raises(CommandError, match="unknown variant"):
        parse_variant(name)
