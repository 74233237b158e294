"""factory_boy factories for the standing cast and their projects."""

from __future__ import annotations

import hashlib
import io
import itertools
import random
import uuid

import factory
from django.contrib.auth import get_user_model
from PIL import Image as PILImage

from labeling.images.models import Image
from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.projects.models import Membership, Project, Role

DIGITS = [str(i) for i in range(10)]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.django.Password("correct horse battery")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")
    labels = factory.LazyFunction(lambda: list(DIGITS))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.ANNOTATOR


def png_bytes(seed: int, size: int = 28, mode: str = "L") -> bytes:
    """A small real PNG whose pixels (and so whose SHA-256) depend on ``seed``."""
    channels = 3 if mode == "RGB" else 1
    noise = random.Random(seed).randbytes(size * size * channels)
    image = PILImage.frombytes(mode, (size, size), noise)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


_seeds = itertools.count(1_000_000)


class ImageFactory(factory.django.DjangoModelFactory):
    """An image row whose bytes are in the image store (tests use a temporary store)."""

    class Meta:
        model = Image

    project = factory.SubFactory(ProjectFactory)
    original_name = factory.Sequence(lambda n: f"img{n}.png")
    width = 28
    height = 28
    mode = "L"
    format = "PNG"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from labeling.core.storage import storage_key, storage_put

        seed = kwargs.pop("seed", None)
        data = kwargs.pop("data", None) or png_bytes(seed if seed is not None else next(_seeds))
        sha = hashlib.sha256(data).hexdigest()
        key = storage_key(sha256=sha, image_format="PNG")
        storage_put(key=key, data=data)
        kwargs.update(sha256=sha, storage_key=key, size_bytes=len(data))
        return super()._create(model_class, *args, **kwargs)


def digits_project_from(folder, *, admin, annotator, name: str, retrain_every: int) -> Project:
    """A ten-digit project (alice-style admin, bob-style annotator) holding every image file
    in ``folder``, uploaded through ingest into the current image store."""
    from labeling.images.services import images_ingest, ingest_limits
    from labeling.images.sources import folder_sources

    project = Project.objects.create(
        name=name,
        slug=f"{name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:8]}",
        labels=DIGITS,
        retrain_every=retrain_every,
        exploration_fraction=0.1,
    )
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    Membership.objects.create(project=project, user=annotator, role=Role.ANNOTATOR)
    report = images_ingest(
        project=project, user=admin, sources=folder_sources(folder, limits=ingest_limits())
    )
    assert report.summary["rejected"] == 0, report.results
    return project


def label_first(project, user, truth: dict[str, str], n: int, start: int = 0) -> None:
    """``user`` labels the project's first ``n`` images (by file name; from the ``start``-th)
    with their true class."""
    from labeling.annotations.services import annotation_submit

    names = dict(Image.objects.filter(project=project).values_list("original_name", "id"))
    for name in sorted(names)[start:n]:
        image = Image.objects.select_related("project").get(pk=names[name])
        annotation_submit(image=image, user=user, label=truth[name], client_id=uuid.uuid4())


def model_version(
    project: Project,
    number: int,
    *,
    metrics: dict | None = None,
    labels_used: int = 0,
    active: bool = False,
) -> ModelVersion:
    """A registered model version (and the succeeded manual run that made it), with no
    checkpoint behind it: for what reads the registry, not for predictions."""
    run = TrainingRun.objects.create(
        project=project, trigger=RunTrigger.MANUAL, status=RunStatus.SUCCEEDED
    )
    return ModelVersion.objects.create(
        project=project,
        run=run,
        number=number,
        checkpoint_key=f"models/{project.pk}/run-{run.pk}.pt",
        architecture="seed_cnn",
        metrics=metrics or {},
        labels_used=labels_used,
        is_active=active,
    )
