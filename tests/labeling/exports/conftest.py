"""A small project with every case an export must get right: unanimous, resolved, partial
and unlabeled images; predictions from two model versions, and one image without any."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest

from labeling.annotations.services import annotation_resolve, annotation_submit
from labeling.images.models import Image
from labeling.learning.models import ImageScore, ModelVersion
from labeling.projects.models import Membership, Project, Role
from tests.factories import ImageFactory, UserFactory, model_version


def version(project: Project, number: int) -> ModelVersion:
    return model_version(project, number, labels_used=10 * number, active=number == 2)


def predict(image: Image, model: ModelVersion, label: str, confidence: float) -> None:
    """What the worker's write-back leaves behind: the image's fields and its score row."""
    labels = list(image.project.labels)
    Image.objects.filter(pk=image.pk).update(
        predicted_label=label, confidence=confidence, uncertainty=1 - confidence
    )
    probabilities = [(1 - confidence) / (len(labels) - 1)] * len(labels)
    probabilities[labels.index(label)] = confidence
    ImageScore.objects.create(
        image=image,
        model_version=model,
        predicted=labels.index(label),
        confidence=confidence,
        probabilities=probabilities,
        score=1 - confidence,
    )


def label(image: Image, user, value: str) -> None:
    image = Image.objects.select_related("project").get(pk=image.pk)
    annotation_submit(image=image, user=user, label=value, client_id=uuid.uuid4())


@dataclass
class Exported:
    project: Project
    images: dict[str, Image]  # by short name: unanimous, resolved, predicted, bare, partial
    v1: ModelVersion
    v2: ModelVersion


@pytest.fixture
def exported(project, alice, bob):
    carol = UserFactory(username="carol")
    Membership.objects.create(project=project, user=carol, role=Role.ANNOTATOR)
    project.annotations_per_image = 2
    project.retrain_every = 0  # no training runs queued by the labels below
    project.save()
    names = {
        "unanimous": "one.png",
        "resolved": "two.png",
        "predicted": "three.png",
        "bare": "four.png",
        "partial": "sub/five.png",
    }
    images = {
        key: ImageFactory(project=project, original_name=name, seed=i)
        for i, (key, name) in enumerate(names.items())
    }
    label(images["unanimous"], bob, "3")
    label(images["unanimous"], carol, "3")
    label(images["resolved"], bob, "7")
    label(images["resolved"], carol, "1")
    annotation_resolve(
        image=Image.objects.select_related("project").get(pk=images["resolved"].pk),
        admin=alice,
        label="7",
    )
    label(images["partial"], bob, "3")
    v1, v2 = version(project, 1), version(project, 2)
    predict(images["unanimous"], v2, "3", 0.875)
    predict(images["resolved"], v2, "1", 0.5)
    predict(images["predicted"], v2, "5", 0.625)
    predict(images["partial"], v1, "3", 0.75)
    for key, image in images.items():
        images[key] = Image.objects.get(pk=image.pk)
    return Exported(project=project, images=images, v1=v1, v2=v2)
