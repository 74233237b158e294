"""Changing a project's acquisition strategy orders the queue by the new one at once, not at
the next retrain: a re-score with the active model, or (before any model) random order or a
cold-start ordering."""

from __future__ import annotations

import pytest

from labeling.annotations.services import task_lease_next
from labeling.images.models import Image, ImageStatus
from labeling.learning.models import ImageScore, ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.runs import run_claim, run_request
from labeling.learning.services import run_request_cold_start
from labeling.learning.worker import Worker
from labeling.projects.models import Strategy
from tests.factories import ImageFactory, label_first


def _least_confident(project, count: int) -> set[int]:
    waiting = ImageScore.objects.filter(
        image__project=project, image__status=ImageStatus.UNLABELED
    ).order_by("confidence")
    return set(waiting.values_list("image_id", flat=True)[:count])


@pytest.mark.django_db(transaction=True)
def test_a_new_strategy_re_scores_the_queue_with_the_active_model(
    ray_session, mnist_project, alice, bob, as_user
):
    project, truth = mnist_project
    project.retrain_every, project.exploration_fraction = 0, 0.0
    project.save()
    label_first(project, bob, truth, 100)
    admin = as_user(alice)
    assert admin.post(f"/api/projects/{project.id}/training-runs/").status_code == 202
    Worker().run_forever(once=True)
    version = ModelVersion.objects.get(project=project, is_active=True)

    def head() -> set[int]:
        return {
            image_id
            for (image_id,) in Image.objects.filter(project=project, status=ImageStatus.UNLABELED)
            .order_by("-priority", "random_key")
            .values_list("id")[:20]
        }

    # `diverse` spreads its batch over the pool; the 20 least confident images are not it.
    assert head() != _least_confident(project, 20)

    # A training run is running (150 labels now) when the admin changes the strategy.
    label_first(project, bob, truth, 150, start=100)
    training, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    worker = Worker()
    assert run_claim(worker=worker.name) == training
    response = admin.patch(
        f"/api/projects/{project.id}/", {"strategy": "least_confidence"}, format="json"
    )
    assert response.status_code == 200, response.content
    rescore = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
    assert (rescore.trigger, rescore.source_version) == (RunTrigger.ACTIVATION, None)

    training.refresh_from_db()
    worker.execute(training)  # promotes version 2, scoring with the strategy it started with
    newer = ModelVersion.objects.get(project=project, is_active=True)
    assert newer.number == 2 and newer.labels_used == 150

    worker.run_forever(once=True)  # the re-score: with version 2, not a rollback to version 1
    rescore.refresh_from_db()
    assert rescore.status == RunStatus.SUCCEEDED, rescore.error
    assert rescore.metrics["activated_version"] == 2
    assert ModelVersion.objects.get(project=project, is_active=True) == newer
    assert ModelVersion.objects.filter(project=project).count() == 2  # re-scored, not retrained
    scorers = ImageScore.objects.filter(image__project=project).values_list("model_version")
    assert set(scorers) == {(newer.pk,)}
    assert head() == _least_confident(project, 20)
    tasks = task_lease_next(project=project, user=bob, count=20)
    assert {t.image_id for t in tasks} == _least_confident(project, 20)
    assert version.pk != newer.pk


@pytest.mark.django_db
def test_a_queued_run_scores_with_the_new_strategy_so_none_is_added(alice, as_user, project):
    run = TrainingRun.objects.create(project=project, trigger=RunTrigger.MANUAL)
    ModelVersion.objects.create(
        project=project,
        run=run,
        number=1,
        checkpoint_key="models/x.pt",
        is_active=True,
        labels_used=10,
    )
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    TrainingRun.objects.create(project=project, trigger=RunTrigger.AUTOMATIC)
    response = as_user(alice).patch(
        f"/api/projects/{project.id}/", {"strategy": "margin"}, format="json"
    )
    assert response.status_code == 200
    queued = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
    assert queued.trigger == RunTrigger.AUTOMATIC and queued.source_version is None


@pytest.mark.django_db
def test_before_any_model_random_drops_the_cold_start_order_and_back_queues_one(
    alice, as_user, project
):
    project.exploration_fraction = 0.0
    project.save()
    images = ImageFactory.create_batch(6, project=project)
    cold = run_request_cold_start(project=project)
    assert cold is not None and cold.status == RunStatus.QUEUED
    Image.objects.filter(pk__in=[i.pk for i in images[:3]]).update(priority=5.0)
    admin = as_user(alice)

    response = admin.patch(f"/api/projects/{project.id}/", {"strategy": "random"}, format="json")
    assert response.status_code == 200
    cold.refresh_from_db()
    assert cold.status == RunStatus.CANCELLED
    assert set(Image.objects.filter(project=project).values_list("priority", flat=True)) == {0.0}
    tasks = task_lease_next(project=project, user=alice, count=6)
    keys = dict(Image.objects.filter(project=project).values_list("id", "random_key"))
    assert [t.image_id for t in tasks] == sorted(keys, key=keys.get)  # random order

    response = admin.patch(
        f"/api/projects/{project.id}/", {"strategy": Strategy.DIVERSE}, format="json"
    )
    assert response.status_code == 200
    queued = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
    assert queued.trigger == RunTrigger.COLD_START
