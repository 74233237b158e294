"""Reads for the learning loop: runs, versions, the learning curve, the score histogram."""

from __future__ import annotations

from django.db.models import Count, F, IntegerField, QuerySet, Value
from django.db.models.functions import Cast, Floor, Least

from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning.models import ModelVersion, RunStatus, TrainingRun
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
    return {
        "learning_curve": curve,
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
