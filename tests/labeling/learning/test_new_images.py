"""Images uploaded to a project that has a model are scored by it and slotted into the queue
where their scores put them, at once: not served last until the next retrain."""

from __future__ import annotations

import shutil
import uuid

import numpy as np
import pytest

from labeling.annotations.services import annotation_submit, task_lease_next
from labeling.images.models import Image, ImageStatus
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import folder_sources
from labeling.learning.jobs.new_images import slot_priorities
from labeling.learning.models import ImageScore, ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.services import run_request_after_upload
from labeling.learning.worker import Worker
from labeling.projects.models import Membership, Project, Role, Strategy
from tests.factories import DIGITS, ImageFactory, label_first, model_version

# --- where a newcomer goes (no database) ---------------------------------------------------


def _queue(priority, score, new_score, strategy=Strategy.MARGIN, seed=0):
    """The whole queue after slotting: (kind, index) in label-first order."""
    slots = slot_priorities(np.array(priority), np.array(score), np.array(new_score),
                            strategy=strategy, seed=seed)  # fmt: skip
    rows = [(p, ("old", i)) for i, p in enumerate(priority)]
    rows += [(p, ("new", i)) for i, p in enumerate(slots)]
    return [who for _, who in sorted(rows, key=lambda r: -r[0])], slots


def test_a_newcomer_goes_between_the_images_whose_scores_surround_its_own() -> None:
    # A margin queue: priorities rank the scores.
    order, slots = _queue([4, 3, 2, 1], [0.9, 0.7, 0.5, 0.3], [0.8, 0.1, 0.95, 0.6, 0.6])
    assert order == [
        ("new", 2), ("old", 0), ("new", 0), ("old", 1), ("new", 3), ("new", 4),
        ("old", 2), ("old", 3), ("new", 1),
    ]  # fmt: skip
    assert (slots > 0).all() and len(set(slots) | {4, 3, 2, 1}) == 9


def test_the_acquisition_batch_keeps_its_place() -> None:
    # `diverse`: a batch of three (chosen together, whatever their scores), then by score.
    priority = [7, 6, 5, 4, 3, 2, 1]
    score = [0.2, 0.9, 0.1, 0.8, 0.6, 0.4, 0.1]
    order, _ = _queue(priority, score, [0.99, 0.5, 0.05], strategy=Strategy.DIVERSE)
    assert order[:3] == [("old", 0), ("old", 1), ("old", 2)]
    assert order[3:] == [
        ("new", 0), ("old", 3), ("old", 4), ("new", 1), ("old", 5), ("old", 6), ("new", 2),
    ]  # fmt: skip


def test_with_nothing_scored_newcomers_come_by_score_before_the_unscored() -> None:
    order, slots = _queue([], [], [0.2, 0.7, 0.4])
    assert order == [("new", 1), ("new", 2), ("new", 0)]
    assert ((slots > 0) & (slots < 1)).all()


def test_in_a_random_project_newcomers_get_random_places_above_the_unscored() -> None:
    priority = list(range(1000, 0, -1))
    _, slots = _queue(priority, [0.0] * 1000, [0.0] * 500, strategy=Strategy.RANDOM, seed=3)
    assert (slots > 0).all() and slots.max() <= 1001
    # Spread over the whole queue, not bunched at either end.
    assert 0.2 < (slots > 500).mean() < 0.8
    _, again = _queue(priority, [0.0] * 1000, [0.0] * 500, strategy=Strategy.RANDOM, seed=3)
    assert (slots == again).all()


def test_repeated_uploads_into_one_gap_stay_in_score_order() -> None:
    priority, score = [2.0, 1.0], [0.9, 0.1]
    for new in ([0.5, 0.6], [0.55], [0.52, 0.58, 0.7]):
        slots = slot_priorities(np.array(priority), np.array(score), np.array(new),
                                strategy=Strategy.MARGIN)  # fmt: skip
        priority += slots.tolist()
        score += new
    ranked = [s for _, s in sorted(zip(priority, score, strict=True), reverse=True)]
    assert ranked == sorted(score, reverse=True)


# --- when a run is queued (database, no Ray) -----------------------------------------------


@pytest.fixture
def modelled(project):
    """A project with an active model and some images."""
    ImageFactory.create_batch(3, project=project)
    model_version(project, 1, active=True, labels_used=10)
    return project


@pytest.mark.django_db
def test_an_upload_into_a_project_with_a_model_queues_a_scoring_of_the_new_images(modelled):
    run = run_request_after_upload(project=modelled)
    assert (run.trigger, run.status) == (RunTrigger.NEW_IMAGES, RunStatus.QUEUED)
    assert run_request_after_upload(project=modelled) is None  # the queued one covers more
    assert TrainingRun.objects.get(project=modelled, status=RunStatus.QUEUED) == run


@pytest.mark.django_db
def test_a_queued_training_run_covers_the_new_images(modelled):
    queued = TrainingRun.objects.create(project=modelled, trigger=RunTrigger.MANUAL)
    assert run_request_after_upload(project=modelled) is None
    assert TrainingRun.objects.get(project=modelled, status=RunStatus.QUEUED) == queued


@pytest.mark.django_db
def test_a_running_run_does_not_cover_them_so_one_is_queued(modelled):
    TrainingRun.objects.create(project=modelled, trigger=RunTrigger.AUTOMATIC, status="running")
    run = run_request_after_upload(project=modelled)
    assert run is not None and run.trigger == RunTrigger.NEW_IMAGES


@pytest.mark.django_db
def test_a_training_request_takes_over_a_queued_scoring(modelled, alice, as_user):
    scoring = run_request_after_upload(project=modelled)
    response = as_user(alice).post(f"/api/projects/{modelled.id}/training-runs/")
    assert response.status_code == 202, response.content
    assert (response.json()["id"], response.json()["trigger"]) == (scoring.pk, "manual")


@pytest.mark.django_db(transaction=True)  # the trigger runs when the label commits
def test_enough_labels_turn_a_queued_scoring_into_a_retrain(modelled, alice):
    modelled.retrain_every = 2
    modelled.save()
    scoring = run_request_after_upload(project=modelled)
    for image in Image.objects.filter(project=modelled)[:2]:
        annotation_submit(image=image, user=alice, label="1", client_id=uuid.uuid4())
    scoring.refresh_from_db()
    assert (scoring.trigger, scoring.status) == (RunTrigger.AUTOMATIC, RunStatus.QUEUED)


@pytest.mark.django_db
def test_a_strategy_change_re_scores_everything_in_place_of_a_queued_scoring(
    modelled, alice, as_user
):
    scoring = run_request_after_upload(project=modelled)
    response = as_user(alice).patch(
        f"/api/projects/{modelled.id}/", {"strategy": "entropy"}, format="json"
    )
    assert response.status_code == 200, response.content
    scoring.refresh_from_db()
    assert (scoring.trigger, scoring.status) == (RunTrigger.ACTIVATION, RunStatus.QUEUED)


# --- the whole path: upload, worker, queue (real files, database, worker and Ray) ----------


def _copy(src, dst, names) -> None:
    dst.mkdir()
    for name in names:
        shutil.copy(src / name, dst / name)


@pytest.mark.django_db(transaction=True)
def test_new_digits_are_scored_by_the_model_and_served_by_their_scores(
    ray_session, mnist_pngs, alice, bob, as_user, tmp_path
):
    folder, truth = mnist_pngs
    names = sorted(truth)
    _copy(folder, tmp_path / "first", names[:1000])
    _copy(folder, tmp_path / "more", names[1000:1300])
    project = Project.objects.create(
        name="new images", slug=f"new-{uuid.uuid4().hex[:8]}", labels=DIGITS,
        retrain_every=0, exploration_fraction=0.0,
    )  # fmt: skip
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    Membership.objects.create(project=project, user=bob, role=Role.ANNOTATOR)

    def upload(path) -> None:
        sources = folder_sources(path, limits=ingest_limits())
        report = images_ingest(project=project, user=alice, sources=sources)
        assert report.summary["rejected"] == 0

    upload(tmp_path / "first")
    label_first(project, bob, truth, 100)
    assert as_user(alice).post(f"/api/projects/{project.id}/training-runs/").status_code == 202
    Worker().run_forever(once=True)
    version = ModelVersion.objects.get(project=project, is_active=True)
    waiting = Image.objects.filter(project=project, status=ImageStatus.UNLABELED)
    before = dict(waiting.values_list("id", "priority"))

    upload(tmp_path / "more")
    run = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
    assert run.trigger == RunTrigger.NEW_IMAGES
    Worker().run_forever(once=True)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.metrics == {"scored": 300, "failed_items": 0, "version": version.number}
    assert set(run.stage_seconds) == {"score", "write-back"}
    assert ModelVersion.objects.filter(project=project).count() == 1  # scored, not retrained
    # The images already waiting keep their places; every new one is scored by the model.
    assert dict(waiting.filter(id__in=before).values_list("id", "priority")) == before
    new = waiting.exclude(id__in=before)
    assert new.count() == 300 and not new.filter(priority__lte=0).exists()
    scores = ImageScore.objects.filter(image__project=project, image__status="unlabeled")
    assert set(scores.values_list("model_version", flat=True)) == {version.pk}
    assert scores.count() == 900 + 300
    # Its suggestions for them are the model's (v1 on 100 labels: most are right).
    name_of = dict(new.values_list("id", "original_name"))
    right = [truth[name_of[i]] == p for i, p in new.values_list("id", "predicted_label")]
    assert np.mean(right) >= 0.75

    # The queue: the run's acquisition batch, then old and new together by score.
    queue = list(
        scores.order_by("-image__priority", "image__random_key").values_list("image_id", "score")
    )
    ranked = [s for _, s in queue]
    batch = next(i for i in range(len(ranked)) if ranked[i:] == sorted(ranked[i:], reverse=True))
    assert batch <= 50 and not set(i for i, _ in queue[:batch]) - set(before)
    newcomers_in_first_half = sum(1 for i, _ in queue[: len(queue) // 2] if i not in before)
    assert 0 < newcomers_in_first_half < 300  # spread by score, not all first or all last
    # Served in that order.
    served = []
    for _ in range(4):
        leased = [t.image_id for t in task_lease_next(project=project, user=bob, count=50)]
        # Handed to another annotator, so that bob's next call leases the next 50.
        Image.objects.filter(id__in=leased).update(leased_to=alice)
        served += leased
    assert served == [i for i, _ in queue[:200]]
