"""The training-run lifecycle, in one place: the only code that writes a run's status or a
model version's ``is_active``.

    queued --claim--> running --succeed--> succeeded
      |                  |------fail----> failed
      |                  |------cancel--> cancelled (at the next stage boundary)
      |                  +--stale heartbeat--> queued again (failed after MAX_ATTEMPTS)
      +--cancel--> cancelled

A project never has two queued runs nor two running ones in one lane (database constraints):
rounds and queue orderings go in the ``main`` lane, backbone pretraining and imports in the
``background`` lane, so a long pretraining never holds up a round. The web side
requests and cancels; the worker (``labeling.learning.worker``) claims, heartbeats, fails and,
inside its write-back transaction (``run_owned``), registers and promotes versions and
succeeds. ``run_finished`` and ``version_activated`` (``labeling.core.events``) go out in the
transaction that made them true. docs/architecture.md draws the diagram.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from labeling.core import events
from labeling.core.errors import Conflict
from labeling.learning.models import (
    FOLLOW_UPS,
    ModelVersion,
    RunLane,
    RunStatus,
    RunTrigger,
    TrainingRun,
    lane_of,
)
from labeling.projects.models import Project

logger = logging.getLogger(__name__)

# A run whose workers keep dying is failed rather than retried forever.
MAX_ATTEMPTS = 3
# Runs that only order the queue (no model trained, none activated): a request for any other
# run takes a queued one's place, since that run scores the whole pool when it starts.
ORDERING_ONLY = (RunTrigger.COLD_START, RunTrigger.NEW_IMAGES)


class RunLost(Exception):
    """The run is no longer this worker's (cancelled, re-queued to another worker, or gone)."""


def run_request(
    *,
    project: Project,
    trigger: str,
    user: AbstractBaseUser | None = None,
    source_version: ModelVersion | None = None,
    params: dict | None = None,
) -> tuple[TrainingRun, bool]:
    """Queue a run; returns (run, created). A project never has two queued runs in a lane:
    asking again while one is queued returns that one."""
    lane = lane_of(trigger)
    try:
        with transaction.atomic():
            run = TrainingRun.objects.create(
                project=project,
                trigger=trigger,
                lane=lane,
                requested_by=user,
                source_version=source_version,
                params=params or {},
            )
        return run, True
    except IntegrityError:
        queued = TrainingRun.objects.filter(
            project=project, lane=lane, status=RunStatus.QUEUED
        ).first()
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
        elif queued.trigger in FOLLOW_UPS and trigger not in FOLLOW_UPS:
            # A label check or a fine-tune waits for the lane: any other run takes a queued
            # one's place, and it is queued again when the lane is free
            # (services.run_maybe_follow_ups).
            queued.trigger, queued.requested_by, queued.params = trigger, user, params or {}
            queued.save(update_fields=["trigger", "requested_by", "params"])
        return queued, False


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


def run_cancel_queued(*, project: Project, trigger: str) -> int:
    """Cancel the project's queued run of this kind, if any (a cold start made pointless by
    a switch to random order). Returns how many were cancelled."""
    return TrainingRun.objects.filter(
        project=project, status=RunStatus.QUEUED, trigger=trigger
    ).update(status=RunStatus.CANCELLED, finished_at=timezone.now())


def run_requeue_stale(*, now=None, alive: str = "") -> list[int]:
    """Running runs whose worker stopped heartbeating go back to the queue (or fail after
    MAX_ATTEMPTS). Returns their ids. ``alive``: the calling worker, whose own runs are never
    orphans however late their heartbeat (one lane's loop must not take a run from under
    another lane of the same worker, on a machine too busy to heartbeat in time)."""
    now = now or timezone.now()
    stale_after = timedelta(seconds=settings.LABELLOOP_WORKER_STALE_SECONDS)
    touched = []
    with transaction.atomic():
        stale = TrainingRun.objects.select_for_update(skip_locked=True).filter(
            status=RunStatus.RUNNING, heartbeat_at__lt=now - stale_after
        )
        stale = list(stale.exclude(worker=alive) if alive else stale)
        for run in stale:
            touched.append(run.pk)
            queued_elsewhere = TrainingRun.objects.filter(
                project_id=run.project_id, lane=run.lane, status=RunStatus.QUEUED
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
                events.run_finished.send(sender=TrainingRun, run_id=run.pk)
    return touched


_CLAIM_SQL = """
UPDATE learning_trainingrun r
SET status = 'running', worker = %(worker)s, attempts = r.attempts + 1,
    started_at = COALESCE(r.started_at, now()), heartbeat_at = now(), stage = 'claimed'
WHERE r.id = (
    SELECT q.id FROM learning_trainingrun q
    WHERE q.status = 'queued' AND q.lane = %(lane)s
      AND (%(run_id)s::bigint IS NULL OR q.id = %(run_id)s::bigint)
      AND NOT EXISTS (
          SELECT 1 FROM learning_trainingrun b
          WHERE b.project_id = q.project_id AND b.lane = q.lane AND b.status = 'running'
      )
    ORDER BY q.created_at, q.id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING r.id
"""


def run_claim(
    *, worker: str, lane: str = RunLane.MAIN, run_id: int | None = None
) -> TrainingRun | None:
    """Take the oldest queued run of ``lane`` whose project has no running run in that lane,
    or None. With ``run_id``, take that run only (a caller driving its own runs)."""
    params = {"worker": worker, "lane": str(lane), "run_id": run_id}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, params)
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
    """The run ends failed (or cancelled, at the worker's stage boundary), if it is still
    this worker's; run.failed is announced with the failure."""
    with transaction.atomic():
        failed = TrainingRun.objects.filter(
            pk=run_id, status=RunStatus.RUNNING, worker=worker
        ).update(
            status=RunStatus.CANCELLED if cancelled else RunStatus.FAILED,
            error=error[:10_000],
            finished_at=timezone.now(),
        )
        if failed and not cancelled:
            events.run_finished.send(sender=TrainingRun, run_id=run_id)


def run_record_source_version(*, run: TrainingRun, version: ModelVersion) -> None:
    """An activation run without a version (a strategy change) records the one it re-scores
    with, for the API and run.succeeded."""
    TrainingRun.objects.filter(pk=run.pk).update(source_version=version)


def run_record_snapshot(*, run: TrainingRun, labels: int) -> None:
    """How many consensus labels the run's snapshot held (the retrain trigger counts from
    the last training run's snapshot)."""
    TrainingRun.objects.filter(pk=run.pk).update(labels_snapshot=labels)


@contextmanager
def run_owned(*, run: TrainingRun, worker: str) -> Iterator[TrainingRun]:
    """The write-back transaction, entered only while ``worker`` still owns the run (else
    ``RunLost``): the run's row stays locked until it commits."""
    with transaction.atomic():
        current = TrainingRun.objects.select_for_update().filter(pk=run.pk).first()
        if current is None or current.status != RunStatus.RUNNING or current.worker != worker:
            raise RunLost()  # re-queued to another worker meanwhile: let it finish
        yield current


def run_succeed(
    *, run: TrainingRun, current: TrainingRun, metrics: dict, timings: dict, started: float
) -> None:
    """Mark the run succeeded inside its write-back transaction (``run_owned``); run.succeeded
    goes out with it. ``started``: ``time.perf_counter()`` when the write-back began."""
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED,
        stage="done",
        progress=1.0,
        finished_at=timezone.now(),
        metrics=metrics,
        stage_seconds={
            **current.stage_seconds,
            **timings,
            "write-back": round(time.perf_counter() - started, 3),
        },
    )
    events.run_finished.send(sender=TrainingRun, run_id=run.pk)


def version_register(
    *,
    run: TrainingRun,
    checkpoint_key: str,
    architecture: str,
    config: dict,
    metrics: dict,
    labels_used: int,
    backbone=None,
) -> ModelVersion:
    """The run's model, numbered next in its project; not active until promoted. One per
    run (a resumed run finds it: ``ModelVersion.objects.filter(run=run)``)."""
    number = (
        ModelVersion.objects.filter(project=run.project).aggregate(n=Max("number"))["n"] or 0
    ) + 1
    return ModelVersion.objects.create(
        project=run.project,
        run=run,
        number=number,
        checkpoint_key=checkpoint_key,
        architecture=architecture,
        config=config,
        metrics=metrics,
        labels_used=labels_used,
        backbone=backbone,
    )


def version_promote(
    *, version: ModelVersion, user: AbstractBaseUser | None = None, announce: bool = True
) -> bool:
    """Make ``version`` the project's active model, in the caller's transaction (or its own).
    Returns whether it changed; ``version_activated`` goes out when it did and ``announce``."""
    with transaction.atomic():
        ModelVersion.objects.filter(project_id=version.project_id, is_active=True).exclude(
            pk=version.pk
        ).update(is_active=False)
        changed = bool(
            ModelVersion.objects.filter(pk=version.pk, is_active=False).update(is_active=True)
        )
        if changed and announce:
            events.version_activated.send(sender=ModelVersion, version=version, user=user)
    return changed


def version_activate(*, version: ModelVersion, user: AbstractBaseUser | None = None) -> TrainingRun:
    """An admin makes ``version`` the active model (a rollback, or a version held back as
    worse) and the queue is re-scored with it."""
    version_promote(version=version, user=user)
    run, _ = run_request(
        project=version.project,
        trigger=RunTrigger.ACTIVATION,
        user=user,
        source_version=version,
    )
    return run
