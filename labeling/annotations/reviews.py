"""The review queue: labels a ``label_check`` run suspects are wrong, and reviewers' decisions.

``reviews_open`` is what the learning app's label check calls (it sits above this app) to
put the labels it found into the queue; ``review_decide`` records a reviewer's decision.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone

from labeling.annotations.consensus import CONSENSUS_FIELDS, apply_consensus
from labeling.annotations.lease_log import lease_log_end
from labeling.annotations.models import Annotation, AnnotationSource, LabelReview, ReviewState
from labeling.annotations.services import _current_label, _lock_image_and_classes
from labeling.core import events
from labeling.core.errors import Conflict, NotFound, ValidationFailed
from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.projects.labels import label_resolve
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
            # A gold question's label is its known answer: never a suspect.
            Image.objects.filter(
                project=project,
                pk__in=list(by_image),
                status=ImageStatus.LABELED,
                gold_label__isnull=True,
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


class Decision(models.TextChoices):
    CONFIRM = "confirm", "The label is right: keep it"
    RELABEL = "relabel", "The label is wrong: set another"
    SEND_BACK = "send_back", "Unsure: discard the votes and ask annotators again"


# The review's state after each decision.
_DECIDED = {
    Decision.CONFIRM: ReviewState.CONFIRMED,
    Decision.RELABEL: ReviewState.RELABELED,
    Decision.SEND_BACK: ReviewState.SENT_BACK,
}


def review_decide(
    *,
    review_id: int,
    user: AbstractBaseUser,
    decision: str,
    label: str | None = None,
    decision_id: uuid.UUID,
) -> LabelReview:
    """Decide an open review; idempotent on ``decision_id``.

    ``confirm`` keeps the label (later checks leave it alone); ``relabel`` records the
    reviewer's ``label`` as a decision (source ``review``: the image's label whatever the votes
    say) and re-judges the image, as an admin's resolution does; ``send_back`` discards every
    counted vote of the image (kept on record) so it returns to the queue, and its earlier
    voters may vote again. The review keeps who decided, when, and the label before and after.

    One decision per review: the review row is locked, so of two reviewers deciding at once
    one wins and the other gets a 409 ``already_decided``; the winner's replay (same
    ``decision_id``) answers with the review unchanged. A review whose image's label changed
    since it was found is marked ``stale`` and refused (409 ``stale``).
    """
    if decision not in Decision.values:
        raise ValidationFailed(
            f"decision must be one of {', '.join(Decision.values)}, got {decision!r}",
            code="decision",
        )
    if decision == Decision.RELABEL and not label:
        raise ValidationFailed("relabel needs the new label in 'label'", code="label")
    if decision != Decision.RELABEL and label:
        raise ValidationFailed(
            f"'label' goes with relabel only, not with {decision} (which sets no label)",
            code="label",
        )
    replayed = _replayed(review_id, decision_id)
    if replayed is not None:
        return replayed
    stale = False
    try:
        with transaction.atomic():
            review = LabelReview.objects.select_for_update().get(pk=review_id)
            if review.decision_id == decision_id:  # the same decision raced in and won
                return _with_people(review)
            if review.state != ReviewState.OPEN:
                raise _refusal(review)
            # The review row first, then the image (and the classes): every path that locks
            # both does so in this order.
            image, labels, renames = _lock_image_and_classes(review.image_id)
            given = label_resolve(review.given_label, labels, renames) or review.given_label
            if image.status != ImageStatus.LABELED or image.consensus_label != given:
                review.state = ReviewState.STALE
                review.save(update_fields=["state"])
                stale = True
            else:
                _apply(review, image, user, decision, label, labels, renames, given, decision_id)
    except LabelReview.DoesNotExist:
        raise NotFound("review not found") from None
    except IntegrityError:
        # The decision_id is another review's (or annotation's), or that review's decision
        # committed on another connection in the meantime.
        replayed = _replayed(review_id, decision_id)
        if replayed is not None:
            return replayed
        raise _reused() from None
    if stale:
        raise Conflict(
            f"the image's label changed since this review was found (it was "
            f"{review.given_label!r}); the review is closed as stale",
            code="stale",
            details={"given_label": review.given_label, "label_now": image.consensus_label},
        )
    return _with_people(review)


def _apply(review, image, user, decision, label, labels, renames, given, decision_id) -> None:
    """The decision on a review whose label still stands, under both locks."""
    if image.gold_label is not None and decision != Decision.CONFIRM:
        raise Conflict(
            "this image is a gold question: its label is its gold answer "
            "(change the gold label instead)",
            code="gold",
        )
    if decision == Decision.RELABEL:
        new = _current_label(label, labels, renames)
        if new == given:
            raise ValidationFailed(
                f"{new!r} is already the image's label; to keep it, confirm", code="same_label"
            )
        _relabel(image, user, new, decision_id)
        review.label_after = new
    elif decision == Decision.SEND_BACK:
        _send_back(image)
    review.state = _DECIDED[Decision(decision)]
    review.decided_by, review.decided_at = user, timezone.now()
    review.decision_id = decision_id
    fields = ["state", "decided_by", "decided_at", "label_after", "decision_id"]
    review.save(update_fields=fields)


def _replayed(review_id: int, decision_id: uuid.UUID) -> LabelReview | None:
    existing = LabelReview.objects.filter(decision_id=decision_id).first()
    if existing is None:
        return None
    if existing.pk != review_id:
        raise _reused()
    return _with_people(existing)


def _reused() -> Conflict:
    return Conflict(
        "this decision_id was already used for another decision; send a new one",
        code="decision_id_reused",
    )


def _with_people(review: LabelReview) -> LabelReview:
    return LabelReview.objects.select_related("decided_by").get(pk=review.pk)


def _refusal(review: LabelReview) -> Conflict:
    if review.state == ReviewState.STALE:
        return Conflict(
            "the image's label changed since this review was found; the review is closed as stale",
            code="stale",
        )
    who = review.decided_by.get_username() if review.decided_by else "a former user"
    when = review.decided_at.isoformat() if review.decided_at else "earlier"
    return Conflict(
        f"this review was already decided ({review.state}) by {who} at {when}",
        code="already_decided",
        details={"state": review.state, "decided_by": who, "decided_at": when},
    )


def _history(image: Image) -> list[Annotation]:
    return list(Annotation.objects.filter(image=image).order_by("created_at", "id"))


def _judge(image: Image, project: Project) -> None:
    """Judge the image again from its history; a judgement that takes it out of the queue
    ends whoever's lease was on it (as a resolution does)."""
    apply_consensus(image, project, _history(image))
    if image.status not in QUEUE_STATUSES and image.leased_to_id is not None:
        lease_log_end(image_id=image.pk, user_ids=[image.leased_to_id])
        image.leased_to_id, image.lease_expires = None, None
        image.lease_exploration = False
    image.save(update_fields=CONSENSUS_FIELDS)


def _relabel(image: Image, user: AbstractBaseUser, label: str, decision_id: uuid.UUID) -> None:
    project = image.project
    before = image.consensus_label
    Annotation.objects.create(
        image=image,
        annotator=user,
        label=label,
        client_id=decision_id,
        source=AnnotationSource.REVIEW,
    )
    _judge(image, project)
    if image.status == ImageStatus.LABELED and image.consensus_label != before:
        # Announced (image.labeled) and counted toward retrain_every, like a resolution: the
        # next run trains on the corrected label.
        events.images_labeled.send(
            sender=Annotation,
            project=project,
            images=[image],
            source=AnnotationSource.REVIEW,
            user=user,
        )


def _send_back(image: Image) -> None:
    Annotation.objects.filter(image=image, discarded_at__isnull=True).update(
        discarded_at=timezone.now()
    )
    _judge(image, image.project)
