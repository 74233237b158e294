"""Consensus: an image's status, label and agreement from its annotators' votes, and the
re-judging of waiting images when the project's overlap (``annotations_per_image``) changes.
"""

from __future__ import annotations

from collections import Counter

from django.db import transaction

from labeling.annotations.lease_log import lease_log_end
from labeling.annotations.models import Annotation, AnnotationSource
from labeling.core import events
from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.projects.models import Project

# Ties ask for more annotators, but not forever: after this many extra annotations a tied
# image waits for a project admin.
EXTRA_ANNOTATIONS_FOR_TIES = 2
# The images_labeled source of images a consensus recompute labeled (no one submitted anything).
CONSENSUS = "consensus"

# Labels set by a decision (an admin's resolution, a reviewer's relabel): the latest one is
# the image's label, whatever the votes say.
DECISIONS = (AnnotationSource.RESOLUTION, AnnotationSource.REVIEW)

# The image fields a judgement (and the lease it ends) writes.
CONSENSUS_FIELDS = [
    "status",
    "consensus_label",
    "agreement",
    "annotation_count",
    "in_random_slice",
    "leased_to",
    "lease_expires",
    "lease_exploration",
    "updated_at",
]


def apply_consensus(image: Image, project: Project, history: list[Annotation]) -> None:
    """Status, consensus label and agreement from each annotator's latest label.

    ``history`` is every annotation of the image, oldest first. Discarded votes (a reviewer
    sent the image back) do not count; a decision (resolution, review) or a gold label fixes
    the label.
    """
    latest: dict[int, str] = {}
    resolution = image.gold_label  # a gold question's known answer is its label
    imported = False
    for annotation in history:
        if annotation.discarded_at is not None:
            continue  # sent back by a reviewer: on record, no longer counted
        if annotation.source in DECISIONS:
            if image.gold_label is None:
                resolution = annotation.label
            continue
        imported |= annotation.source == AnnotationSource.IMPORT
        latest[annotation.annotator_id] = annotation.label
    votes = Counter(latest.values())
    image.annotation_count = len(latest)
    if resolution is not None or imported:
        final = resolution or votes.most_common(1)[0][0]
        image.status, image.consensus_label = ImageStatus.LABELED, final
        image.agreement = votes[final] / len(latest) if latest else 1.0
        return
    if not latest:
        image.status, image.consensus_label, image.agreement = ImageStatus.UNLABELED, None, None
        return
    ranked = votes.most_common()
    top_label, top = ranked[0]
    tied = len(ranked) > 1 and ranked[1][1] == top
    image.agreement = top / len(latest)
    need = project.annotations_per_image
    if len(latest) < need:
        image.status, image.consensus_label = ImageStatus.PARTIAL, None
    elif not tied:
        image.status, image.consensus_label = ImageStatus.LABELED, top_label
    elif len(latest) < need + EXTRA_ANNOTATIONS_FOR_TIES:
        image.status, image.consensus_label = ImageStatus.PARTIAL, None  # one more, please
    else:
        image.status, image.consensus_label = ImageStatus.DISPUTED, None


def consensus_recompute(*, project: Project, chunk: int = 500) -> int:
    """Judge the images still waiting for labels (partial or disputed) again, under the
    project's ``annotations_per_image`` now; returns how many reached a consensus.

    Run when an admin changes that number (``project_settings_changed``), inside that
    change's transaction. Lowered, it finishes the images that already have enough agreeing
    votes (they leave the queue and send ``images_labeled``: they count toward
    ``retrain_every`` and are announced); raised, a disputed image asks for more votes again.
    Labeled images keep their consensus either way. A chunk of images at a time (bounded
    memory), each in a savepoint of its own.
    """
    ids = list(
        Image.objects.filter(
            project=project, status__in=[ImageStatus.PARTIAL, ImageStatus.DISPUTED]
        ).values_list("id", flat=True)
    )
    labeled = 0
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        with transaction.atomic():
            images = Image.objects.select_for_update().filter(
                pk__in=part, status__in=[ImageStatus.PARTIAL, ImageStatus.DISPUTED]
            )
            history: dict[int, list[Annotation]] = {}
            for annotation in Annotation.objects.filter(image_id__in=part).order_by(
                "created_at", "id"
            ):
                history.setdefault(annotation.image_id, []).append(annotation)
            done = []
            for image in images.order_by("id"):
                status = image.status
                apply_consensus(image, project, history.get(image.pk, []))
                if image.status == status:
                    continue
                if image.status not in QUEUE_STATUSES and image.leased_to_id is not None:
                    lease_log_end(image_id=image.pk, user_ids=[image.leased_to_id])
                    image.leased_to_id, image.lease_expires = None, None
                    image.lease_exploration = False
                image.save(update_fields=CONSENSUS_FIELDS)
                if image.status == ImageStatus.LABELED:
                    done.append(image)
            if done:
                events.images_labeled.send(
                    sender=Annotation, project=project, images=done, source=CONSENSUS, user=None
                )
            labeled += len(done)
    return labeled
