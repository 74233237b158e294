"""A second annotator (carol) and a small queue for the queue and lease tests."""

from __future__ import annotations

import pytest

from labeling.projects.models import Membership, Role
from tests.factories import ImageFactory, UserFactory


@pytest.fixture
def carol(project):
    user = UserFactory(username="carol")
    Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    return user


@pytest.fixture
def images(project):
    """Ten images with distinct priorities 0..9 (9 is the most informative)."""
    project.exploration_fraction = 0.0
    project.save()
    return [ImageFactory(project=project, priority=float(p)) for p in range(10)]
