"""Each event reaches the receiver from the code path that causes it: labels (batched), model
activation, and runs finishing or failing in the worker; and the worker's own delivery
thread sends them."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from labeling.annotations.services import annotation_resolve, annotation_submit
from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.runs import run_request, version_activate
from labeling.learning.worker import Worker
from labeling.projects.services import project_update
from labeling.webhooks import delivery
from labeling.webhooks.delivery import webhook_deliver_due
from labeling.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookLabelEvent
from labeling.webhooks.services import webhook_create, webhook_ping
from tests.factories import ImageFactory, model_version

pytestmark = pytest.mark.django_db


def label(image, user, value: str) -> None:
    annotation_submit(image=image, user=user, label=value, client_id=uuid.uuid4())


def test_labels_arrive_batched_in_one_request(hook, receiver, project, bob):
    images = [ImageFactory(project=project) for _ in range(12)]
    for i, image in enumerate(images):
        label(image, bob, str(i % 10))
    assert WebhookLabelEvent.objects.count() == 12
    assert receiver.received == []  # labeling itself sends nothing

    webhook_deliver_due()
    [request] = receiver.received
    assert request.headers["X-LabelLoop-Event"] == "image.labeled"
    assert request.signed_with(hook.secret)
    body = request.json
    assert body["event"] == "image.labeled" and body["count"] == 12
    assert [(i["image"], i["label"]) for i in body["images"]] == [
        (image.pk, str(n % 10)) for n, image in enumerate(images)
    ]
    assert body["images"][0]["agreement"] == 1.0 and body["images"][0]["annotations"] == 1
    assert not WebhookLabelEvent.objects.exists()
    assert WebhookDelivery.objects.get().status == DeliveryStatus.DELIVERED


def test_a_batch_holds_at_most_the_cap_and_the_rest_follow(
    hook, receiver, project, bob, monkeypatch
):
    monkeypatch.setattr(delivery, "BATCH_MAX", 5)
    for _ in range(12):
        label(ImageFactory(project=project), bob, "3")
    webhook_deliver_due()
    assert [r.json["count"] for r in receiver.received] == [5, 5, 2]


def test_labels_wait_for_the_batching_window_before_they_are_sent(
    hook, receiver, project, bob, settings
):
    settings.LABELLOOP_WEBHOOK_BATCH_SECONDS = 60
    for _ in range(3):
        label(ImageFactory(project=project), bob, "7")
    now = timezone.now()
    assert webhook_deliver_due(now=now).sent == 0
    label(ImageFactory(project=project), bob, "8")
    assert webhook_deliver_due(now=now + timedelta(seconds=61)).sent == 1
    assert [i["label"] for i in receiver.received[0].json["images"]] == ["7", "7", "7", "8"]


def test_an_image_is_announced_when_it_reaches_consensus_and_when_it_changes(
    hook, receiver, project, alice, bob, victor
):
    project.annotations_per_image = 2
    project.save()
    image = ImageFactory(project=project)
    label(image, bob, "4")
    assert not WebhookLabelEvent.objects.exists()  # one label of two: no consensus yet
    label(image, alice, "4")
    annotation_resolve(image=image, admin=alice, label="9")  # an admin overrules
    webhook_deliver_due()
    [request] = receiver.received
    assert [(i["image"], i["label"]) for i in request.json["images"]] == [(image.pk, "9")]


def test_labeling_through_the_api_returns_before_anything_is_sent(
    hook, receiver, project, bob, as_user
):
    image = ImageFactory(project=project)
    response = as_user(bob).post(
        "/api/annotations/", {"image": image.pk, "label": "5", "client_id": str(uuid.uuid4())}
    )
    assert response.status_code == 201
    assert receiver.received == []
    webhook_deliver_due()
    assert receiver.events() == ["image.labeled"]


def test_a_change_that_rolls_back_leaves_no_event(hook, receiver, project, bob):
    image = ImageFactory(project=project)
    with pytest.raises(RuntimeError), transaction.atomic():
        label(image, bob, "1")
        raise RuntimeError("the caller's transaction fails after the label")
    assert not WebhookLabelEvent.objects.exists()
    assert webhook_deliver_due().sent == 0


def test_events_a_webhook_did_not_subscribe_to_are_not_queued(project, alice, bob, receiver):
    webhook_create(project=project, user=alice, url=receiver.url, events=["run.failed"])
    label(ImageFactory(project=project), bob, "2")
    version_activate(version=_version(project, number=1), user=alice)
    assert not WebhookLabelEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def test_disabled_webhooks_get_no_events(project, alice, bob, receiver):
    webhook_create(project=project, user=alice, url=receiver.url, is_active=False)
    label(ImageFactory(project=project), bob, "2")
    version_activate(version=_version(project, number=1), user=alice)
    assert not WebhookLabelEvent.objects.exists()
    assert not WebhookDelivery.objects.exists()


def _version(project, *, number: int, active: bool = False) -> ModelVersion:
    metrics = {"accuracy": 0.5 + number / 10, "val_source": "random_slice"}
    return model_version(project, number, metrics=metrics, labels_used=100 * number, active=active)


def test_an_admin_activating_a_version_sends_model_activated_once(
    hook, receiver, project, alice, as_user
):
    v1 = _version(project, number=1, active=True)
    v2 = _version(project, number=2)
    client = as_user(alice)
    assert client.post(f"/api/model-versions/{v1.pk}/activate/").status_code == 202
    assert not WebhookDelivery.objects.exists()  # already active: nothing changed
    assert client.post(f"/api/model-versions/{v2.pk}/activate/").status_code == 202
    assert receiver.received == []
    webhook_deliver_due()
    [request] = receiver.received
    assert request.headers["X-LabelLoop-Event"] == "model.activated"
    body = request.json
    assert body["model_version"]["id"] == v2.pk and body["model_version"]["number"] == 2
    assert body["model_version"]["accuracy"] == pytest.approx(0.7)
    assert body["activated_by"] == "alice"


@pytest.mark.django_db(transaction=True)
def test_a_failed_run_sends_run_failed_without_the_traceback(hook, receiver, project):
    ImageFactory(project=project)  # nothing labeled: the run fails
    run, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    Worker().run_forever(once=True)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "Traceback" in run.error
    webhook_deliver_due()
    [request] = receiver.received
    assert request.headers["X-LabelLoop-Event"] == "run.failed"
    body = request.json["run"]
    assert body["id"] == run.pk and body["status"] == "failed" and body["trigger"] == "manual"
    assert body["error"] == "RuntimeError: no consensus labels yet: label some images first"


@pytest.mark.django_db(transaction=True)
def test_a_successful_run_sends_run_succeeded_and_model_activated(hook, receiver, project):
    run, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    # The run's model is already registered (as after a worker died past training): the
    # worker goes straight to scoring (nothing to score here) and the write-back.
    ModelVersion.objects.create(
        project=project,
        run=run,
        number=1,
        checkpoint_key="models/digits/run.pt",
        architecture="cnn",
        metrics={"accuracy": 0.91, "promote": True, "val_source": "split"},
        labels_used=40,
    )
    Worker().run_forever(once=True)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    webhook_deliver_due()
    assert sorted(receiver.events()) == ["model.activated", "run.succeeded"]
    by_event = {r.headers["X-LabelLoop-Event"]: r.json for r in receiver.received}
    succeeded = by_event["run.succeeded"]["run"]
    assert succeeded["id"] == run.pk and succeeded["model_version"] == 1
    assert succeeded["metrics"] == {"accuracy": 0.91, "promoted": True, "val_source": "split"}
    assert by_event["model.activated"]["model_version"]["number"] == 1
    assert by_event["model.activated"]["activated_by"] is None  # the run promoted it


@pytest.mark.django_db(transaction=True)
def test_the_rescore_after_an_activation_does_not_announce_the_model_twice(
    hook, receiver, project, alice
):
    version = _version(project, number=1)
    run = version_activate(version=version, user=alice)
    Worker().run_forever(once=True)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    webhook_deliver_due()
    assert sorted(receiver.events()) == ["model.activated", "run.succeeded"]


@pytest.mark.django_db(transaction=True)
def test_a_strategy_change_re_score_names_the_model_it_used(hook, receiver, project):
    _version(project, number=1, active=True)
    project_update(project=project, strategy="margin")
    run = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
    assert (run.trigger, run.source_version) == (RunTrigger.ACTIVATION, None)
    _version(project, number=2, active=False)
    ModelVersion.objects.filter(project=project).update(is_active=False)
    ModelVersion.objects.filter(project=project, number=2).update(is_active=True)

    Worker().run_forever(once=True)  # takes the model active now: version 2
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.source_version.number == 2
    webhook_deliver_due()
    assert receiver.events() == ["run.succeeded"]  # the model is not announced again
    assert receiver.received[0].json["run"]["model_version"] == 2


@pytest.mark.django_db(transaction=True)
def test_the_worker_sends_webhooks_from_its_own_thread(hook, receiver):
    delivery = webhook_ping(webhook=hook)
    worker = Worker(poll_seconds=0.1)

    def serve() -> None:
        try:
            worker.run_forever(predict=False)
        finally:
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        receiver.wait_for(1, timeout=60)
        deadline = time.monotonic() + 60
        while not WebhookDelivery.objects.filter(pk=delivery.pk, status="delivered").exists():
            assert time.monotonic() < deadline, "the delivery was never marked delivered"
            time.sleep(0.05)
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
    assert receiver.events() == ["ping"]


def test_labels_imported_with_an_upload_are_announced_in_one_batch(
    hook, receiver, project, alice, as_user, _image_store
):
    from tests.labeling.images.helpers import encode, make_zip, sample, upload

    archive = make_zip({f"d/{n}.png": encode(sample(n), "PNG") for n in range(4)})
    manifest = b"filename,label\n0.png,0\n1.png,1\n2.png,2\n"  # 3.png comes without a label
    response = as_user(alice).post(
        f"/api/projects/{project.id}/images/",
        {"files": [upload("set.zip", archive)], "labels": upload("labels.csv", manifest)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    ids = {r["name"]: r["image"] for r in response.json()["results"]}
    webhook_deliver_due()
    [request] = receiver.received
    body = request.json
    assert body["event"] == "image.labeled" and body["count"] == 3
    assert sorted((i["image"], i["label"], i["original_name"]) for i in body["images"]) == sorted(
        (ids[f"set.zip/d/{n}.png"], str(n), f"set.zip/d/{n}.png") for n in range(3)
    )
    assert all(i["agreement"] == 1.0 and i["annotations"] == 1 for i in body["images"])


def test_images_finished_by_a_lower_overlap_are_announced(hook, receiver, project, bob):
    from labeling.projects.services import project_update

    project_update(project=project, annotations_per_image=2)
    images = [ImageFactory(project=project) for _ in range(2)]
    for image, value in zip(images, "47", strict=True):
        label(image, bob, value)  # one vote of two: nothing to announce yet
    assert not WebhookLabelEvent.objects.exists()

    project_update(project=project, annotations_per_image=1)
    webhook_deliver_due()
    [request] = receiver.received
    assert request.json["event"] == "image.labeled"
    assert [(i["image"], i["label"]) for i in request.json["images"]] == [
        (images[0].pk, "4"),
        (images[1].pk, "7"),
    ]
