"""Cold start: before any model exists, the worker orders the queue for coverage, so the first
labels span the data (DESIGN.md section 4, step 2). Real files, database, worker and Ray."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from PIL import Image as PILImage

from labeling.annotations.services import annotation_submit, task_lease_next
from labeling.images.models import Image, ImageStatus
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import folder_sources
from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.worker import Worker
from labeling.projects.models import Membership, Project, Role, Strategy

pytestmark = pytest.mark.django_db(transaction=True)

KINDS = 10  # distinct looks in the pool
COPIES = 20  # noisy copies of each


def write_pool(folder, *, kinds=range(KINDS), copies: int = COPIES, seed: int = 0) -> dict:
    """PNGs of `kinds` looks (a bright square at a place of its own), each in `copies` noisy,
    jittered copies. Returns file name -> kind."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    kind_of = {}
    for kind in kinds:
        row, col = divmod(kind, 4)
        for copy in range(copies):
            pixels = rng.normal(20, 12, (28, 28))
            dy, dx = rng.integers(-1, 2, size=2)
            top, left = 1 + 9 * row + dy, 1 + 7 * col + dx
            pixels[max(top, 0) : top + 7, max(left, 0) : left + 6] += 200
            name = f"kind{kind}-{copy:02d}.png"
            image = np.clip(pixels, 0, 255).astype(np.uint8)
            PILImage.fromarray(image, mode="L").save(folder / name)
            kind_of[name] = kind
    return kind_of


def make_project(alice, strategy: str = Strategy.DIVERSE, **fields) -> Project:
    project = Project.objects.create(
        name="cold start",
        slug=f"cold-{uuid.uuid4().hex[:8]}",
        labels=[str(k) for k in range(KINDS)],
        strategy=strategy,
        exploration_fraction=0.0,
        **fields,
    )
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    return project


def ingest(project, user, folder, manifest: dict[str, str] | None = None) -> None:
    report = images_ingest(
        project=project,
        user=user,
        sources=folder_sources(folder, limits=ingest_limits()),
        manifest=manifest,
    )
    assert report.count("created") > 0


def test_the_first_tasks_of_a_new_project_cover_every_kind_of_image(ray_session, alice, tmp_path):
    kind_of = write_pool(tmp_path / "pool")
    project = make_project(alice)
    ingest(project, alice, tmp_path / "pool")
    run = TrainingRun.objects.get(project=project)
    assert (run.trigger, run.status) == (RunTrigger.COLD_START, RunStatus.QUEUED)

    Worker(poll_seconds=0.1).run_forever(once=True)

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.metrics == {
        "ordered": KINDS * COPIES,
        "sampled": KINDS * COPIES,
        "failed_items": 0,
        "features": "thumbnails",  # no backbone: coverage on 8x8 thumbnails
    }
    assert set(run.stage_seconds) >= {"order", "write-back"}
    assert not ModelVersion.objects.filter(project=project).exists()  # ordering, not training
    # Ten tasks, ten looks. In random order (what the queue served before), ten of these 200
    # images cover all ten looks with probability ~4e-4.
    tasks = task_lease_next(project=project, user=alice, count=KINDS)
    names = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
    assert sorted(kind_of[names[t.image_id]] for t in tasks) == list(range(KINDS))


def test_a_labeled_image_keeps_its_priority_and_leaves_the_order(ray_session, alice, tmp_path):
    write_pool(tmp_path / "pool", kinds=range(3), copies=10)
    project = make_project(alice)
    ingest(project, alice, tmp_path / "pool")
    labeled = Image.objects.filter(project=project).order_by("id").first()
    annotation_submit(image=labeled, user=alice, label="0", client_id=uuid.uuid4())
    Image.objects.filter(pk=labeled.pk).update(priority=-7.0)

    Worker(poll_seconds=0.1).run_forever(once=True)

    labeled.refresh_from_db()
    assert (labeled.status, labeled.priority) == (ImageStatus.LABELED, -7.0)
    queue = Image.objects.filter(project=project, status=ImageStatus.UNLABELED)
    assert sorted(queue.values_list("priority", flat=True)) == [float(p) for p in range(1, 30)]


def test_random_projects_keep_random_order(alice, tmp_path):
    write_pool(tmp_path / "pool", kinds=range(2), copies=5)
    project = make_project(alice, strategy=Strategy.RANDOM)
    ingest(project, alice, tmp_path / "pool")
    assert not TrainingRun.objects.filter(project=project).exists()


def test_images_added_after_the_first_model_are_ordered_by_the_model_not_a_cold_start(
    alice, tmp_path
):
    write_pool(tmp_path / "first", kinds=range(2), copies=5)
    project = make_project(alice)
    ingest(project, alice, tmp_path / "first")
    run = TrainingRun.objects.get(project=project)
    TrainingRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCEEDED)
    ModelVersion.objects.create(
        project=project, run=run, number=1, checkpoint_key="models/x.pt", labels_used=10
    )

    write_pool(tmp_path / "more", kinds=range(2, 4), copies=5, seed=1)
    ingest(project, alice, tmp_path / "more")
    assert TrainingRun.objects.filter(project=project).count() == 1


def test_more_images_before_any_model_queue_another_cold_start(alice, tmp_path):
    write_pool(tmp_path / "first", kinds=range(2), copies=5)
    project = make_project(alice)
    ingest(project, alice, tmp_path / "first")
    TrainingRun.objects.filter(project=project).update(status=RunStatus.SUCCEEDED)

    write_pool(tmp_path / "more", kinds=range(2, 4), copies=5, seed=1)
    ingest(project, alice, tmp_path / "more")
    queued = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
    assert queued.trigger == RunTrigger.COLD_START


def test_an_admins_training_request_takes_over_a_queued_cold_start(alice, tmp_path, as_user):
    write_pool(tmp_path / "pool", kinds=range(2), copies=5)
    project = make_project(alice)
    ingest(project, alice, tmp_path / "pool")
    cold = TrainingRun.objects.get(project=project)

    response = as_user(alice).post(f"/api/projects/{project.id}/training-runs/")

    assert response.status_code == 202, response.content
    body = response.json()
    assert (body["id"], body["trigger"], body["status"]) == (cold.pk, "manual", "queued")
    cold.refresh_from_db()
    assert (cold.trigger, cold.requested_by) == (RunTrigger.MANUAL, alice)
    assert TrainingRun.objects.filter(project=project).count() == 1


def test_labels_reaching_retrain_every_turn_a_queued_cold_start_into_a_retrain(alice, tmp_path):
    write_pool(tmp_path / "pool", kinds=range(2), copies=5)
    project = make_project(alice, retrain_every=3)
    ingest(project, alice, tmp_path / "pool")
    for image in Image.objects.filter(project=project).order_by("id")[:3]:
        annotation_submit(image=image, user=alice, label="1", client_id=uuid.uuid4())

    run = TrainingRun.objects.get(project=project)
    assert (run.trigger, run.status) == (RunTrigger.AUTOMATIC, RunStatus.QUEUED)


def test_imported_labels_count_toward_retrain_every(alice, tmp_path):
    kind_of = write_pool(tmp_path / "first", kinds=range(2), copies=5)
    project = make_project(alice, retrain_every=12)
    # 7 imported labels (and 3 unlabeled images): too few to train, so the queue is ordered.
    first = {name: str(kind) for name, kind in sorted(kind_of.items())[:7]}
    ingest(project, alice, tmp_path / "first", manifest=first)
    run = TrainingRun.objects.get(project=project)
    assert (run.trigger, run.status) == (RunTrigger.COLD_START, RunStatus.QUEUED)

    # 7 more bring the project to 14 labels: the import itself queues the retrain, in place of
    # the cold start (no human label has to arrive first).
    kind_of = write_pool(tmp_path / "more", kinds=range(2, 4), copies=5, seed=1)
    more = {name: str(kind) for name, kind in sorted(kind_of.items())[:7]}
    ingest(project, alice, tmp_path / "more", manifest=more)
    run = TrainingRun.objects.get(project=project)
    assert (run.trigger, run.status) == (RunTrigger.AUTOMATIC, RunStatus.QUEUED)
    labeled = Image.objects.filter(project=project, status=ImageStatus.LABELED).count()
    assert labeled == 14


def test_an_import_with_labels_into_a_project_without_automatic_retrains_queues_no_retrain(
    alice, tmp_path
):
    kind_of = write_pool(tmp_path / "pool", kinds=range(2), copies=10)
    project = make_project(alice, retrain_every=0)
    labels = {name: str(kind) for name, kind in sorted(kind_of.items())[:15]}
    ingest(project, alice, tmp_path / "pool", manifest=labels)
    run = TrainingRun.objects.get(project=project)  # the 5 unlabeled images still get ordered
    assert (run.trigger, run.status) == (RunTrigger.COLD_START, RunStatus.QUEUED)
