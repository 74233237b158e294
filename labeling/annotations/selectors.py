"""Reads for annotations and project statistics."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import Count, Q
from django.utils import timezone

from labeling.annotations.models import Annotation
from labeling.images.models import Image, ImageStatus
from labeling.projects.models import Project


def project_stats(*, project: Project) -> dict[str, object]:
    """Counts for the dashboard, each from one aggregate query."""
    images = Image.objects.filter(project=project)
    by_status = dict(images.values_list("status").annotate(n=Count("id")).order_by())
    consensus = dict(
        images.exclude(consensus_label=None)
        .values_list("consensus_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    now = timezone.now()
    annotations = Annotation.objects.filter(image__project=project)
    per_user = (
        annotations.values("annotator__username")
        .annotate(
            total=Count("id"),
            last_hour=Count("id", filter=Q(created_at__gte=now - timedelta(hours=1))),
            last_day=Count("id", filter=Q(created_at__gte=now - timedelta(days=1))),
        )
        .order_by("-total", "annotator__username")
    )
    return {
        "images": {
            "total": sum(by_status.values()),
            "by_status": {s.value: by_status.get(s.value, 0) for s in ImageStatus},
        },
        "annotations": {"total": annotations.count()},
        "class_balance": {label: consensus.get(label, 0) for label in project.labels},
        "annotators": [
            {
                "username": row["annotator__username"],
                "annotations": row["total"],
                "last_hour": row["last_hour"],
                "last_24h": row["last_day"],
            }
            for row in per_user
        ],
    }
