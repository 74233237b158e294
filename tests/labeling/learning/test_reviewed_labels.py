"""The model's next run trains on the labels reviewers corrected: a relabel is in the next
snapshot under its new label, an image sent back is not in it until it is labeled again."""

from __future__ import annotations

import uuid

import pytest

from labeling.annotations.models import LabelReview
from labeling.annotations.reviews import Suspect, review_decide, reviews_open
from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning.models import RunTrigger, TrainingRun
from labeling.learning.snapshot import take_snapshot
from labeling.projects.models import Membership, Role
from tests.factories import ImageFactory, UserFactory

pytestmark = pytest.mark.django_db


def snapshot_labels(project) -> dict[int, str]:
    """Image id -> class name, for every image the next run would train or validate on."""
    run = TrainingRun.objects.create(project=project, trigger=RunTrigger.MANUAL)
    snap = take_snapshot(run)
    run.delete()  # one queued run per project: the next call makes its own
    refs = snap.items + snap.val_items
    labels = snap.labels + snap.val_labels
    return {int(ref.key): snap.classes[y] for ref, y in zip(refs, labels, strict=True)}


@pytest.fixture
def doubted(project, bob):
    """bob labeled three images 3; a label check doubts two of them."""
    project.retrain_every = 0
    project.save()
    images = []
    for _ in range(3):
        image = ImageFactory(project=project)
        annotation_submit(
            image=Image.objects.select_related("project").get(pk=image.pk),
            user=bob,
            label="3",
            client_id=uuid.uuid4(),
        )
        images.append(image)
    reviews_open(
        project=project,
        run_id=None,
        suspects=[Suspect(image.pk, 0.9, "3", "5", 0.8) for image in images[:2]],
    )
    rita = UserFactory(username="rita")
    Membership.objects.create(project=project, user=rita, role=Role.REVIEWER)
    return images, rita


def decide(image, user, decision: str, label: str | None = None) -> None:
    review = LabelReview.objects.get(image=image, state="open")
    review_decide(
        review_id=review.pk, user=user, decision=decision, label=label, decision_id=uuid.uuid4()
    )


def test_the_next_snapshot_has_the_reviewers_label_not_the_old_one(project, doubted):
    (relabeled, _, untouched), rita = doubted
    assert snapshot_labels(project)[relabeled.pk] == "3"
    decide(relabeled, rita, "relabel", "5")
    labels = snapshot_labels(project)
    assert labels[relabeled.pk] == "5"
    assert labels[untouched.pk] == "3"


def test_an_image_sent_back_is_not_in_the_snapshot_until_labeled_again(project, doubted, bob):
    (_, sent_back, untouched), rita = doubted
    decide(sent_back, rita, "send_back")
    labels = snapshot_labels(project)
    assert sent_back.pk not in labels
    assert untouched.pk in labels
    annotation_submit(
        image=Image.objects.select_related("project").get(pk=sent_back.pk),
        user=bob,
        label="5",
        client_id=uuid.uuid4(),
    )
    assert snapshot_labels(project)[sent_back.pk] == "5"
