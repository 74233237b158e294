"""Fixtures for the learning loop: a project of 2,000 real MNIST digits (the PNGs and Ray:
``mnist_pngs`` and ``ray_session`` in tests/conftest.py)."""

from __future__ import annotations

import pytest

from labeling.images.models import Image
from tests.factories import digits_project_from


@pytest.fixture
def mnist_project(mnist_pngs, alice, bob):
    folder, truth = mnist_pngs
    project = digits_project_from(
        folder, admin=alice, annotator=bob, name="MNIST loop", retrain_every=100
    )
    assert Image.objects.filter(project=project).count() == len(truth)
    return project, truth
