"""``annotator.quality_low``: sent when an annotator's gold accuracy crosses below the
project's ``gold_alert_accuracy``, once per crossing, to the webhooks subscribed to it."""

from __future__ import annotations

import uuid

import pytest

from labeling.annotations.services import annotation_submit
from labeling.webhooks.delivery import webhook_deliver_due
from labeling.webhooks.models import WebhookDelivery
from labeling.webhooks.services import webhook_create
from tests.factories import ImageFactory

pytestmark = pytest.mark.django_db


def answer(project, user, right: bool) -> None:
    image = ImageFactory(project=project, gold_label="1", status="labeled", consensus_label="1")
    annotation_submit(image=image, user=user, label="1" if right else "2", client_id=uuid.uuid4())


def test_an_annotator_falling_below_the_threshold_is_announced_once(hook, receiver, project, bob):
    project.gold_alert_accuracy = 0.75
    project.save()
    for right in [True] * 7 + [False] * 3:  # 7 of 10: below 0.75 at the tenth answer
        answer(project, bob, right)
    for right in [False, True]:  # still below: nothing more
        answer(project, bob, right)
    [delivery] = WebhookDelivery.objects.filter(event="annotator.quality_low")
    webhook_deliver_due()
    [request] = [r for r in receiver.received if r.json["event"] == "annotator.quality_low"]
    assert request.headers["X-LabelLoop-Event"] == "annotator.quality_low"
    assert request.signed_with(hook.secret)
    body = request.json
    assert body["project"] == {"id": project.pk, "slug": project.slug}
    assert {k: body[k] for k in body if k not in ("project", "occurred_at")} == {
        "event": "annotator.quality_low",
        "annotator": "bob",
        "gold_answered": 10,
        "gold_correct": 7,
        "gold_accuracy": 0.7,
        "threshold": 0.75,
    }
    assert delivery.payload == body


def test_only_webhooks_subscribed_to_it_get_it(project, alice, bob, receiver):
    webhook_create(project=project, user=alice, url=receiver.url, events=["run.succeeded"])
    project.gold_alert_accuracy = 0.9
    project.save()
    for _ in range(10):
        answer(project, bob, False)
    assert not WebhookDelivery.objects.exists()


def test_the_threshold_at_zero_announces_nothing(hook, project, bob):
    project.gold_alert_accuracy = 0.0
    project.save()
    for _ in range(12):
        answer(project, bob, False)
    assert not WebhookDelivery.objects.filter(event="annotator.quality_low").exists()
