"""Reads for the learning loop: runs, versions, the learning curve, the score histogram."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db.models import Count, F, IntegerField, Q, QuerySet, Value
from django.db.models.functions import Cast, Floor, Least
from django.utils import timezone

from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.projects.labels import follow_renames
from labeling.projects.models import Project
from training.metrics import accuracy_interval


def run_list(*, project: Project) -> QuerySet[TrainingRun]:
    return TrainingRun.objects.filter(project=project).select_related("model_version")


def version_list(*, project: Project) -> QuerySet[ModelVersion]:
    return ModelVersion.objects.filter(project=project).select_related("backbone")


def held_out(metrics: dict) -> dict[str, object]:
    """How many labels a version's accuracy was measured on, and its 95% interval: 100% on 5
    held-out labels is anywhere from 57% to 100%."""
    n, accuracy = metrics.get("n_val"), metrics.get("accuracy")
    if not n or accuracy is None:
        return {"val_images": n or None, "accuracy_interval": None}
    low, high = accuracy_interval(round(accuracy * n), n)
    return {"val_images": n, "accuracy_interval": [round(low, 4), round(high, 4)]}


# Runs that train no round on new labels: their snapshots do not count toward retrain_every.
NOT_ROUNDS = (
    RunTrigger.ACTIVATION,
    RunTrigger.LABEL_CHECK,
    RunTrigger.FINE_TUNE,
    RunTrigger.COLD_START,
    RunTrigger.NEW_IMAGES,
)


def last_round_snapshot(*, project: Project) -> int:
    """The consensus labels the project's last successful round trained on (0: none yet)."""
    return (
        TrainingRun.objects.filter(project=project, status=RunStatus.SUCCEEDED)
        .exclude(trigger__in=NOT_ROUNDS)
        .values_list("labels_snapshot", flat=True)
        .first()
    ) or 0


def next_round(*, project: Project, labeled: int) -> dict[str, int] | None:
    """How many more consensus labels queue the next automatic round (``retrain_every``
    since the last round's snapshot); None when automatic rounds are off."""
    if project.retrain_every <= 0:
        return None
    since = labeled - last_round_snapshot(project=project)
    return {"every": project.retrain_every, "labels_until": max(0, project.retrain_every - since)}


def learning_stats(*, project: Project) -> dict[str, object]:
    """The learning curve (labels -> validation accuracy, with the unbiased random-slice
    estimate where the evaluation used it), the active model, and an uncertainty histogram."""
    versions = list(
        ModelVersion.objects.filter(project=project)
        .order_by("number")
        .values("number", "labels_used", "metrics", "config", "is_active", "created_at")
    )
    curve = [
        {
            "version": v["number"],
            "labels": v["labels_used"],
            "accuracy": v["metrics"].get("accuracy"),
            "random_slice_accuracy": (
                v["metrics"].get("accuracy")
                if v["metrics"].get("val_source") == "random_slice"
                else None
            ),
            "val_source": v["metrics"].get("val_source"),
            **held_out(v["metrics"]),
        }
        for v in versions
    ]
    active = next((v for v in versions if v["is_active"]), None)
    classes, per_class = None, None
    if active:
        # The names the model was trained with, as the project calls those classes now.
        renames = project.label_renames[int(active["config"].get("renames_seen", 0)) :]
        if active["metrics"].get("classes") is not None:
            classes = follow_renames(active["metrics"]["classes"], renames)
        if active["metrics"].get("per_class") is not None:
            names = follow_renames(list(active["metrics"]["per_class"]), renames)
            per_class = dict(zip(names, active["metrics"]["per_class"].values(), strict=True))
    bins = 10
    histogram = dict(
        Image.objects.filter(project=project, status__in=QUEUE_STATUSES, uncertainty__isnull=False)
        .annotate(
            bucket=Least(Cast(Floor(F("uncertainty") * bins), IntegerField()), Value(bins - 1))
        )
        .values_list("bucket")
        .annotate(n=Count("id"))
        .order_by()
    )
    labeled = Image.objects.filter(project=project, status=ImageStatus.LABELED).count()
    return {
        "learning_curve": curve,
        "next_round": next_round(project=project, labeled=labeled),
        "active_model": (
            {
                "version": active["number"],
                "labels": active["labels_used"],
                "accuracy": active["metrics"].get("accuracy"),
                **held_out(active["metrics"]),
                "confusion": active["metrics"].get("confusion"),
                "classes": classes,  # the confusion matrix's order
                "per_class": per_class,
                "ece": active["metrics"].get("ece"),
                "created_at": active["created_at"],
            }
            if active
            else None
        ),
        "uncertainty_histogram": [
            {"from": i / bins, "to": (i + 1) / bins, "images": histogram.get(i, 0)}
            for i in range(bins)
        ],
        "runs_in_progress": TrainingRun.objects.filter(
            project=project, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        ).count(),
    }


def run_wait(*, run: TrainingRun, now: datetime | None = None) -> dict[str, object] | None:
    """Why a queued run waits, or None when it does not: its place in its lane's line (runs
    are claimed oldest first, one at a time per project and lane), what is running, and a
    sentence that says it. Other projects are counted, never named."""
    if run.status != RunStatus.QUEUED:
        return None
    now = now or timezone.now()
    lane = TrainingRun.objects.filter(lane=run.lane)
    running = list(lane.filter(status=RunStatus.RUNNING).values("id", "project_id", "started_at"))
    ahead = (
        lane.filter(status=RunStatus.QUEUED)
        .filter(Q(created_at__lt=run.created_at) | Q(created_at=run.created_at, id__lt=run.pk))
        .count()
    )
    mine = [r for r in running if r["project_id"] == run.project_id]
    others = len(running) - len(mine)
    waited = (now - run.created_at).total_seconds()
    if mine:
        reason = "project_busy"
        message = f"Waits for this project's run #{mine[0]['id']} to finish (one at a time)."
    elif others or ahead:
        reason = "worker_busy"
        parts = []
        if others:
            parts.append(f"the worker is busy with {_runs(others)} of other projects")
        if ahead:
            parts.append(f"{_runs(ahead)} {'is' if ahead == 1 else 'are'} ahead in line")
        message = "Waits its turn: " + "; ".join(parts) + "."
    elif waited > settings.LABELLOOP_WORKER_STALE_SECONDS:
        reason = "no_worker"
        message = (
            f"No worker has picked it up in {round(waited)} s: "
            "is a worker (manage.py worker) running?"
        )
    else:
        reason = "starting"
        message = "A worker picks it up in a moment."
    return {
        "reason": reason,
        "position": ahead + 1,
        "ahead": ahead,
        "running_elsewhere": others,
        "waited_seconds": round(waited),
        "message": message,
    }


def _runs(count: int) -> str:
    return f"{count} run" if count == 1 else f"{count} runs"
