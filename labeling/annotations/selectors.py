"""Reads for annotations and project statistics."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Avg, Case, Count, Prefetch, Q, QuerySet, When
from django.utils import timezone

from labeling.annotations.models import Annotation, GoldAnswer, LabelReview, ReviewState
from labeling.core.errors import NotFound, ValidationFailed
from labeling.images.models import Image, ImageStatus
from labeling.images.selectors import image_shown_fields
from labeling.projects.models import Project, Role
from labeling.projects.selectors import project_get_for_user


def annotation_stats(*, project: Project, mask_gold: bool = False) -> dict[str, object]:
    """The labeling side of the dashboard's counts (the learning side is
    ``learning.selectors.learning_stats``), each from one aggregate query.

    With ``mask_gold`` (everyone but the project's admins), gold questions count as the
    unlabeled images they read as, and answers to them as the annotations they look like
    (annotations.gold): an annotator's own count grows by one per task either way."""
    images = Image.objects.filter(project=project).annotate(
        **image_shown_fields(mask_gold=mask_gold)
    )
    by_status = dict(images.values_list("shown_status").annotate(n=Count("id")).order_by())
    consensus = dict(
        images.exclude(shown_label=None)
        .values_list("shown_label")
        .annotate(n=Count("id"))
        .order_by()
    )
    now = timezone.now()
    annotations = Annotation.objects.filter(image__project=project)
    per_user = _throughput(annotations, now)
    total = annotations.count()
    if mask_gold:
        answers = GoldAnswer.objects.filter(image__project=project)
        for name, row in _throughput(answers, now).items():
            mine = per_user.setdefault(name, {"total": 0, "last_hour": 0, "last_day": 0})
            for key in ("total", "last_hour", "last_day"):
                mine[key] += row[key]
        total += answers.count()
    ranked = sorted(per_user.items(), key=lambda item: (-item[1]["total"], item[0]))
    return {
        "images": {
            "total": sum(by_status.values()),
            "by_status": {s.value: by_status.get(s.value, 0) for s in ImageStatus},
        },
        "annotations": {"total": total},
        "agreement": agreement_stats(project=project),
        "class_balance": {label: consensus.get(label, 0) for label in project.labels},
        "annotators": [
            {
                "username": name,
                "annotations": row["total"],
                "last_hour": row["last_hour"],
                "last_24h": row["last_day"],
            }
            for name, row in ranked
        ],
    }


def _throughput(rows: QuerySet, now) -> dict[str, dict[str, int]]:
    """Per annotator's username: their rows in all, in the last hour, in the last day."""
    counted = (
        rows.values("annotator__username")
        .annotate(
            total=Count("id"),
            last_hour=Count("id", filter=Q(created_at__gte=now - timedelta(hours=1))),
            last_day=Count("id", filter=Q(created_at__gte=now - timedelta(days=1))),
        )
        .order_by()
    )
    return {row["annotator__username"]: row for row in counted}


def annotation_list(*, project: Project) -> QuerySet[Annotation]:
    return (
        Annotation.objects.filter(image__project=project)
        .select_related("annotator")
        .order_by("-id")
    )


def disagreement_list(*, project: Project) -> QuerySet[Image]:
    """Images whose annotators disagree: disputed ones first, then the least agreed."""
    return (
        Image.objects.filter(project=project)
        .filter(Q(status=ImageStatus.DISPUTED) | Q(agreement__lt=1.0))
        .order_by(Case(When(status=ImageStatus.DISPUTED, then=0), default=1), "agreement", "id")
    )


def agreement_stats(*, project: Project) -> dict[str, object]:
    """How often each annotator's latest label matches the consensus, and the mean
    agreement of each class's images: one aggregate query each."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH latest AS (
                SELECT DISTINCT ON (a.image_id, a.annotator_id)
                       a.image_id, a.annotator_id, a.label
                FROM annotations_annotation a
                JOIN images_image i ON i.id = a.image_id
                WHERE i.project_id = %s AND a.source NOT IN ('resolution', 'review')
                ORDER BY a.image_id, a.annotator_id, a.created_at DESC, a.id DESC
            )
            SELECT u.username, count(*),
                   avg(CASE WHEN l.label = i.consensus_label THEN 1.0 ELSE 0.0 END)
            FROM latest l
            JOIN images_image i ON i.id = l.image_id
            JOIN auth_user u ON u.id = l.annotator_id
            WHERE i.consensus_label IS NOT NULL
            GROUP BY u.username ORDER BY u.username
            """,
            [project.id],
        )
        per_annotator = {
            name: {"labels_with_consensus": n, "agreement": float(rate)}
            for name, n, rate in cursor.fetchall()
        }
    per_class = dict(
        Image.objects.filter(project=project, consensus_label__isnull=False)
        .values_list("consensus_label")
        .annotate(mean=Avg("agreement"))
        .order_by()
    )
    return {
        "per_annotator": per_annotator,
        "per_class": {label: per_class.get(label) for label in project.labels},
    }


def image_with_annotations(*, image: Image) -> Image:
    """The image with its annotations (and who gave them), oldest first."""
    annotations = Annotation.objects.select_related("annotator").order_by("created_at", "id")
    return (
        Image.objects.select_related("project")
        .prefetch_related(Prefetch("annotations", queryset=annotations))
        .get(pk=image.pk)
    )


# The review list's state filter: one state, or every state.
REVIEW_STATES = (*ReviewState.values, "all")


def _with_votes(reviews: QuerySet[LabelReview]) -> QuerySet[LabelReview]:
    """Reviews with their image, decider, and every vote on the image (who, oldest first,
    the discarded ones too): three queries for a page, whatever its length."""
    votes = Annotation.objects.select_related("annotator").order_by("created_at", "id")
    return reviews.select_related("image", "decided_by").prefetch_related(
        Prefetch("image__annotations", queryset=votes, to_attr="votes")
    )


def review_list(*, project: Project, state: str = ReviewState.OPEN) -> QuerySet[LabelReview]:
    """The project's reviews in one state (``all``: every state), most likely wrong first."""
    if state not in REVIEW_STATES:
        raise ValidationFailed(
            f"state must be one of {', '.join(REVIEW_STATES)}, got {state[:50]!r}",
            code="invalid_parameter",
            details={"parameter": "state", "choices": list(REVIEW_STATES)},
        )
    reviews = LabelReview.objects.filter(project=project)
    if state != "all":
        reviews = reviews.filter(state=state)
    return _with_votes(reviews).order_by("-score", "id")


def review_get_for_user(
    *, user: AbstractBaseUser, review_id: int | str, role: str = Role.REVIEWER
) -> LabelReview:
    """The review (with its votes) if ``user`` holds ``role`` in its project; 404 for a
    review of a project they are not a member of, 403 for a member without the role."""
    try:
        review = _with_votes(LabelReview.objects.all()).get(pk=int(review_id))
    except (LabelReview.DoesNotExist, ValueError, TypeError):
        raise NotFound("review not found") from None
    try:
        project_get_for_user(user=user, project_id=review.project_id, role=role)
    except NotFound:
        raise NotFound("review not found") from None
    return review
