"""The review queue: labels a ``label_check`` run suspects are wrong, and reviewers' decisions.

``reviews_open`` is what the learning app's label check calls (it sits above this app) to
put the labels it found into the queue; the decisions are in ``reviews_decide`` (services).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.db.models import F

from labeling.annotations.models import LabelReview, ReviewState
from labeling.images.models import Image, ImageStatus
from labeling.projects.models import Project


@dataclass(frozen=True)
class Suspect:
    """One label the check found likely wrong."""

    image_id: int
    score: float  # 0..1: how likely the label is wrong (1 - label quality)
    given_label: str  # the consensus label the check saw
    model_label: str  # the cross-fitted model's class
    model_confidence: float  # its probability of model_label


def reviews_open(*, project: Project, run_id: int | None, suspects: list[Suspect]) -> int:
    """Put ``suspects`` into the project's review queue; returns how many reviews it opened.

    A suspect whose image no longer carries the label the check saw is skipped (someone
    changed it since), as is a label a reviewer already decided (confirmed, or set by their
    relabel): a person's decision outranks the model's doubt. An image already in the queue
    keeps its review, with the new score. Open reviews of labels that changed since they were
    found become ``stale``.
    """
    with transaction.atomic():
        _close_stale(project)
        by_image = {s.image_id: s for s in suspects}
        current = dict(
            Image.objects.filter(
                project=project, pk__in=list(by_image), status=ImageStatus.LABELED
            ).values_list("pk", "consensus_label")
        )
        decided = set(
            LabelReview.objects.filter(
                image_id__in=list(current),
                state__in=[ReviewState.CONFIRMED, ReviewState.RELABELED],
            ).values_list("image_id", "given_label", "label_after")
        )
        settled = {(i, g) for i, g, a in decided if not a} | {(i, a) for i, g, a in decided if a}
        open_now = {
            r.image_id: r
            for r in LabelReview.objects.select_for_update().filter(
                image_id__in=list(current), state=ReviewState.OPEN
            )
        }
        created = []
        for image_id, label in current.items():
            suspect = by_image[image_id]
            if label != suspect.given_label or (image_id, label) in settled:
                continue
            review = open_now.get(image_id)
            if review is not None:
                review.score, review.run_id = suspect.score, run_id
                review.model_label = suspect.model_label
                review.model_confidence = suspect.model_confidence
                review.save(update_fields=["score", "run_id", "model_label", "model_confidence"])
                continue
            created.append(
                LabelReview(
                    project=project,
                    image_id=image_id,
                    score=min(1.0, max(0.0, float(suspect.score))),
                    given_label=label,
                    model_label=suspect.model_label,
                    model_confidence=float(suspect.model_confidence),
                    run_id=run_id,
                )
            )
        LabelReview.objects.bulk_create(created)
    return len(created)


def _close_stale(project: Project) -> None:
    """Open reviews whose image's label is no longer the one found suspect: stale."""
    stale = LabelReview.objects.filter(project=project, state=ReviewState.OPEN).exclude(
        image__status=ImageStatus.LABELED, image__consensus_label=F("given_label")
    )
    stale.update(state=ReviewState.STALE)
