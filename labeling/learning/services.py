"""Writes for the learning loop: requesting, claiming, heartbeating, finishing and cancelling
training runs; activating model versions; the automatic retrain trigger.

The worker (``python manage.py worker``) is the only caller of the claim/finish functions.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling.core.errors import Conflict
from labeling.images.models import Image, ImageStatus
from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.projects.models import Project, Strategy
from labeling.webhooks.services import webhook_emit_run, webhook_emit_version_activated

logger = logging.getLogger(__name__)

# A run whose workers keep dying is failed rather than retried forever.
MAX_ATTEMPTS = 3
# Runs that only order the queue (no model trained, none activated): a request for any other
# run takes a queued one's place, since that run scores the whole pool when it starts.
ORDERING_ONLY = (RunTrigger.COLD_START, RunTrigger.NEW_IMAGES)


def run_request(
    *,
    project: Project,
    trigger: str,
    user: AbstractBaseUser | None = None,
    source_version: ModelVersion | None = None,
) -> tuple[TrainingRun, bool]:
    """Queue a run; returns (run, created). A project never has two queued runs: asking
    again while one is queued returns that one."""
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                project=project, trigger=trigger, requested_by=user, source_version=source_version
            )
        return run, True
    except IntegrityError:
        queued = TrainingRun.objects.filter(project=project, status=RunStatus.QUEUED).first()
        if queued is None:
            raise
        if source_version is not None and queued.source_version_id != source_version.pk:
            # A newer activation supersedes a queued re-score of another version.
            queued.source_version, queued.trigger = source_version, trigger
            queued.save(update_fields=["source_version", "trigger"])
        elif queued.trigger in ORDERING_ONLY and trigger not in ORDERING_ONLY:
            # A training run scores the whole pool: it replaces a queued cold start or
            # scoring of new images.
            queued.trigger, queued.requested_by = trigger, user
            queued.save(update_fields=["trigger", "requested_by"])
        return queued, False


def run_request_cold_start(*, project: Project) -> TrainingRun | None:
    """After images arrive in a project that has no model yet: queue a run that orders the
    queue for coverage (typical, diverse images first; see training.acquisition), so the
    first labels span the data instead of falling where insertion order or chance puts them.
    Random projects keep their random order; a queued run of any kind covers the new images
    too, since it reads the pool when it starts."""
    if project.strategy == Strategy.RANDOM:
        return None
    if ModelVersion.objects.filter(project=project).exists():
        return None
    return _queue_cold_start(project)


def _queue_cold_start(project: Project) -> TrainingRun | None:
    if not Image.objects.filter(project=project, status=ImageStatus.UNLABELED).exists():
        return None
    run, created = run_request(project=project, trigger=RunTrigger.COLD_START)
    if created:
        logger.info("cold-start ordering of %s queued (run %d)", project.slug, run.pk)
    return run


def run_request_after_upload(*, project: Project) -> TrainingRun | None:
    """After images arrive: before any model, a cold-start ordering; with an active model, a
    ``new_images`` run that scores just the new images with it and slots them into the queue
    (``labeling.learning.newcomers``), unless a run is queued already (it reads the pool when
    it starts). Versions with none active: the next training run orders the queue."""
    versions = ModelVersion.objects.filter(project=project).values_list("is_active", flat=True)
    active = set(versions.order_by().distinct())  # {}: no model; {False}: none active
    if not active:
        return None if project.strategy == Strategy.RANDOM else _queue_cold_start(project)
    if True not in active:
        return None
    if TrainingRun.objects.filter(project=project, status=RunStatus.QUEUED).exists():
        return None
    run, created = run_request(project=project, trigger=RunTrigger.NEW_IMAGES)
    if created:
        logger.info("new images in %s: scoring them queued (run %d)", project.slug, run.pk)
    return run


def run_strategy_changed(*, project: Project) -> TrainingRun | None:
    """After the project's acquisition strategy changed: order the queue by the new one now,
    not at the next retrain.

    - With an active model: queue a re-score of the pool (an ``activation`` run without a
      source version: it uses the model active when it runs, so a training run that is
      running now and promotes a new model is not rolled back), unless a run that scores the
      whole pool is queued already - that one reads the new strategy when it starts.
    - No model, now ``random``: the cold-start order gives way to random order at once (a
      queued cold start is cancelled).
    - No model, now model-driven: a cold-start ordering, as for a new upload.
    """
    versions = ModelVersion.objects.filter(project=project)
    if versions.filter(is_active=True).exists():
        queued = TrainingRun.objects.filter(project=project, status=RunStatus.QUEUED)
        if queued.exclude(trigger__in=ORDERING_ONLY).exists():
            return None
        run, _ = run_request(project=project, trigger=RunTrigger.ACTIVATION)
        logger.info("%s now uses %s: queue re-scored by run %d", project.slug,
                    project.strategy, run.pk)  # fmt: skip
        return run
    if versions.exists():
        return None  # versions, none active: the next training run orders the queue
    if project.strategy != Strategy.RANDOM:
        return run_request_cold_start(project=project)
    from labeling.learning.writeback import write_cold_start

    with transaction.atomic():
        TrainingRun.objects.filter(
            project=project, status=RunStatus.QUEUED, trigger=RunTrigger.COLD_START
        ).update(status=RunStatus.CANCELLED, finished_at=timezone.now())
        write_cold_start(project, head=[])  # no head: every waiting image in random order
    return None


def run_maybe_trigger(*, project: Project) -> TrainingRun | None:
    """Queue an automatic run once ``retrain_every`` consensus labels have arrived since the
    last run's snapshot. Called after a label makes an image labeled."""
    if project.retrain_every <= 0:
        return None
    busy = TrainingRun.objects.filter(
        project=project, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    ).exclude(status=RunStatus.QUEUED, trigger__in=ORDERING_ONLY)  # superseded below
    if busy.exists():
        return None
    last = (
        TrainingRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
        .exclude(trigger__in=[RunTrigger.ACTIVATION, *ORDERING_ONLY])
        .values_list("labels_snapshot", flat=True)
        .first()
    ) or 0
    labeled = Image.objects.filter(project=project, status=ImageStatus.LABELED).count()
    if labeled - last < project.retrain_every:
        return None
    run, created = run_request(project=project, trigger=RunTrigger.AUTOMATIC)
    if created:
        logger.info("automatic retrain of %s at %d labels (run %d)", project.slug, labeled, run.pk)
    return run


def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Queued runs are cancelled at once; running ones at their next stage boundary."""
    with transaction.atomic():
        run = TrainingRun.objects.select_for_update().get(pk=run.pk)
        if run.status == RunStatus.QUEUED:
            run.status, run.finished_at = RunStatus.CANCELLED, timezone.now()
            run.save(update_fields=["status", "finished_at"])
        elif run.status == RunStatus.RUNNING:
            run.cancel_requested = True
            run.save(update_fields=["cancel_requested"])
        else:
            raise Conflict(f"run {run.pk} has already {run.status}", code="run_finished")
    return run


def run_requeue_stale(*, now=None) -> list[int]:
    """Running runs whose worker stopped heartbeating go back to the queue (or fail after
    MAX_ATTEMPTS). Returns their ids."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.LABELLOOP_WORKER_STALE_SECONDS)
    touched = []
    with transaction.atomic():
        stale = list(
            TrainingRun.objects.select_for_update(skip_locked=True).filter(
                status=RunStatus.RUNNING, heartbeat_at__lt=now - stale_after
            )
        )
        for run in stale:
            touched.append(run.pk)
            queued_elsewhere = TrainingRun.objects.filter(
                project_id=run.project_id, status=RunStatus.QUEUED
            ).exists()
            if run.attempts >= MAX_ATTEMPTS or queued_elsewhere:
                run.status, run.finished_at = RunStatus.FAILED, now
                run.error = f"its worker ({run.worker}) stopped responding " + (
                    "too many times" if not queued_elsewhere else "and a newer run is queued"
                )
            else:
                run.status, run.stage = RunStatus.QUEUED, "requeued"
                logger.warning("run %d: worker %s went silent; re-queued", run.pk, run.worker)
            run.save(update_fields=["status", "stage", "finished_at", "error"])
            if run.status == RunStatus.FAILED:
                webhook_emit_run(run_id=run.pk)
    return touched


_CLAIM_SQL = """
UPDATE learning_trainingrun r
SET status = 'running', worker = %(worker)s, attempts = r.attempts + 1,
    started_at = COALESCE(r.started_at, now()), heartbeat_at = now(), stage = 'claimed'
WHERE r.id = (
    SELECT q.id FROM learning_trainingrun q
    WHERE q.status = 'queued'
      AND NOT EXISTS (
          SELECT 1 FROM learning_trainingrun b
          WHERE b.project_id = q.project_id AND b.status = 'running'
      )
    ORDER BY q.created_at, q.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING r.id
"""


def run_claim(*, worker: str) -> TrainingRun | None:
    """Take the oldest queued run whose project has no running run, or None."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, {"worker": worker})
            row = cursor.fetchone()
    except IntegrityError:
        return None  # another worker started a run of that project in between
    if row is None:
        return None
    return TrainingRun.objects.select_related("project", "source_version").get(pk=row[0])


def run_heartbeat(*, run_id: int, worker: str, stage: str, progress: float) -> bool:
    """Record liveness and progress. Returns False when the run was cancelled or taken away
    from this worker (so it should stop)."""
    updated = TrainingRun.objects.filter(pk=run_id, status=RunStatus.RUNNING, worker=worker).update(
        heartbeat_at=timezone.now(), stage=stage, progress=min(max(progress, 0.0), 1.0)
    )
    if not updated:
        return False
    return not TrainingRun.objects.filter(pk=run_id, cancel_requested=True).exists()


def run_fail(*, run_id: int, worker: str, error: str, cancelled: bool = False) -> None:
    with transaction.atomic():
        failed = TrainingRun.objects.filter(
            pk=run_id, status=RunStatus.RUNNING, worker=worker
        ).update(
            status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
            error=error[:10_000],
            finished_at=timezone.now(),
        )
        if failed and not cancelled:
            webhook_emit_run(run_id=run_id)  # run.failed, committed with the failure


def version_activate(*, version: ModelVersion, user: AbstractBaseUser | None = None) -> TrainingRun:
    """Make ``version`` the active model (a rollback, or a version held back as worse) and
    queue a re-score of the queue with it."""
    with transaction.atomic():
        ModelVersion.objects.filter(project_id=version.project_id, is_active=True).exclude(
            pk=version.pk
        ).update(is_active=False)
        # model.activated only when it was not already the active one.
        if ModelVersion.objects.filter(pk=version.pk, is_active=False).update(is_active=True):
            webhook_emit_version_activated(version=version, user=user)
    run, _ = run_request(
        project=version.project,
        trigger=RunTrigger.ACTIVATION,
        user=user,
        source_version=version,
    )
    return run
