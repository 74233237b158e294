"""Consensus: an image's status, label and agreement from its annotators' votes, and the
re-judging of waiting images when the project's overlap (``annotations_per_image``) changes.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
from django.db import transaction

from labeling.annotations.lease_log import lease_log_end
from labeling.annotations.models import Annotation, AnnotationSource, ConsensusModel, GoldAnswer
from labeling.annotations.weighted import (
    MIN_IMAGES,
    ReliabilityModel,
    Votes,
    dawid_skene,
    params_from_fit,
    weighted_choice,
)
from labeling.core import events
from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.projects.models import ConsensusMethod, Project

# Ties ask for more annotators, but not forever: after this many extra annotations a tied
# image waits for a project admin.
EXTRA_ANNOTATIONS_FOR_TIES = 2
# The images_labeled source of images a consensus recompute labeled (no one submitted anything).
CONSENSUS = "consensus"

_LOAD = object()  # apply_consensus: read the project's reliability model itself

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


def apply_consensus(
    image: Image, project: Project, history: list[Annotation], model: object = _LOAD
) -> None:
    """Status, consensus label and agreement from each annotator's latest label.

    ``history`` is every annotation of the image, oldest first. Discarded votes (a reviewer
    sent the image back) do not count; a decision (resolution, review) or a gold label fixes
    the label. Under weighted consensus the project's fitted reliability ``model`` (loaded
    when not given; None: majority) weighs the votes of an image that has them all.
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
    need = project.annotations_per_image
    if len(latest) >= max(need, 2) and project.consensus_method == ConsensusMethod.WEIGHTED:
        if model is _LOAD:
            model = reliability_model(project)
        posterior = model.posterior(latest) if model is not None else None
        if posterior is not None:  # else the majority decides (no fit yet, or a new class)
            top_label, tied, unsure = weighted_choice(posterior)
            top = votes[top_label]
            # Unsure of it: one more vote while the project allows one, as for a tie; at
            # the cap the likeliest class is the label (only an exact tie waits for an admin).
            tied = tied or (unsure and len(latest) < need + EXTRA_ANNOTATIONS_FOR_TIES)
    image.agreement = top / len(latest)
    if len(latest) < need:
        image.status, image.consensus_label = ImageStatus.PARTIAL, None
    elif not tied:
        image.status, image.consensus_label = ImageStatus.LABELED, top_label
    elif len(latest) < need + EXTRA_ANNOTATIONS_FOR_TIES:
        image.status, image.consensus_label = ImageStatus.PARTIAL, None  # one more, please
    else:
        image.status, image.consensus_label = ImageStatus.DISPUTED, None


def reliability_model(project: Project) -> ReliabilityModel | None:
    """The project's fitted model of its annotators, or None (not fitted yet)."""
    row = ConsensusModel.objects.filter(project=project).first()
    return ReliabilityModel(row.params) if row is not None and row.params else None


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
    waiting = [ImageStatus.PARTIAL, ImageStatus.DISPUTED]
    ids = list(
        Image.objects.filter(project=project, status__in=waiting).values_list("id", flat=True)
    )
    return _rejudge(project, ids, waiting, reliability_model(project), chunk)[0]


def _rejudge(
    project: Project, ids: list[int], statuses: list[str], model, chunk: int
) -> tuple[int, int]:
    """Judge ``ids`` (those still in ``statuses``) again; returns (images that reached a
    consensus, labeled images whose label changed)."""
    labeled = changed = 0
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        with transaction.atomic():
            images = Image.objects.select_for_update().filter(pk__in=part, status__in=statuses)
            history: dict[int, list[Annotation]] = {}
            for annotation in Annotation.objects.filter(image_id__in=part).order_by(
                "created_at", "id"
            ):
                history.setdefault(annotation.image_id, []).append(annotation)
            done = []
            for image in images.order_by("id"):
                status, label = image.status, image.consensus_label
                agreement, count = image.agreement, image.annotation_count
                apply_consensus(image, project, history.get(image.pk, []), model)
                if (
                    status == ImageStatus.LABELED
                    and image.status != ImageStatus.LABELED
                    and image.annotation_count < project.annotations_per_image
                ):
                    # A raised overlap does not unlabel an image (as in consensus_recompute);
                    # a tie under the method now in force does: it asks for another vote.
                    image.status, image.consensus_label = status, label
                    image.agreement, image.annotation_count = agreement, count
                if image.status == status and image.consensus_label == label:
                    continue
                if image.status not in QUEUE_STATUSES and image.leased_to_id is not None:
                    lease_log_end(image_id=image.pk, user_ids=[image.leased_to_id])
                    image.leased_to_id, image.lease_expires = None, None
                    image.lease_exploration = False
                image.save(update_fields=CONSENSUS_FIELDS)
                if image.status == ImageStatus.LABELED and status != ImageStatus.LABELED:
                    done.append(image)
                elif status == ImageStatus.LABELED:
                    changed += 1
            if done:
                events.images_labeled.send(
                    sender=Annotation, project=project, images=done, source=CONSENSUS, user=None
                )
            labeled += len(done)
    return labeled, changed


def consensus_refit(*, project: Project, chunk: int = 500) -> dict[str, object]:
    """Fit the project's model of its annotators (Dawid-Skene, ``weighted.py``) on every
    counted vote, store it, and judge every image with two or more votes again under the
    project's consensus method; returns what it did (for a run's metrics and the API).

    Called before each training round's snapshot (the model then learns from the re-judged
    labels) and when an admin changes ``consensus_method``. Images whose truth is known pin
    the fit: gold questions (with the annotators' gold answers as votes) and labels decided
    by a reviewer or an admin. With fewer than ``weighted.MIN_IMAGES`` multi-vote images no
    model is kept and the majority decides. A labeled image may change label (the new
    weights say the minority was right); it sends no event, as it was labeled already.
    """
    classes = list(project.labels)
    index = {c: i for i, c in enumerate(classes)}
    latest: dict[int, dict[int, int]] = {}  # image -> annotator -> class
    known: dict[int, int] = {}
    rows = (
        Annotation.objects.filter(image__project=project, discarded_at=None)
        .order_by("image_id", "created_at", "id")
        .values_list("image_id", "annotator_id", "label", "source")
    )
    for image_id, user, label, source in rows.iterator(chunk_size=5000):
        col = index.get(label)
        if col is None:
            continue
        if source in DECISIONS:
            known[image_id] = col
        elif source == AnnotationSource.MANUAL:
            latest.setdefault(image_id, {})[user] = col
    gold = dict(
        Image.objects.filter(project=project, gold_label__isnull=False).values_list(
            "id", "gold_label"
        )
    )
    for image_id, gold_label in gold.items():
        if gold_label in index:
            known[image_id] = index[gold_label]
    answers = GoldAnswer.objects.filter(image__project=project).values_list(
        "image_id", "annotator_id", "label"
    )
    for image_id, user, label in answers.iterator(chunk_size=5000):
        if label in index and image_id in known:
            latest.setdefault(image_id, {})[user] = index[label]
    multi = [i for i, v in latest.items() if len(v) >= 2 and i not in known]
    items = multi + [i for i in latest if i in known]
    model = None
    report: dict[str, object] = {"method": project.consensus_method, "images": len(multi)}
    if project.consensus_method == ConsensusMethod.WEIGHTED and len(multi) >= MIN_IMAGES:
        row_of = {image_id: r for r, image_id in enumerate(items)}
        users = sorted({u for i in items for u in latest[i]})
        col_of = {u: c for c, u in enumerate(users)}
        triples = [(row_of[i], col_of[u], lab) for i in items for u, lab in latest[i].items()]
        arr = np.asarray(triples, dtype=np.int64)
        votes = Votes(arr[:, 0], arr[:, 1], arr[:, 2], len(items), len(users))
        pins = {row_of[i]: known[i] for i in items if i in known}
        fit = dawid_skene(votes, len(classes), pins)
        params = params_from_fit(fit, classes, users, len(multi))
        ConsensusModel.objects.update_or_create(project=project, defaults={"params": params})
        model = ReliabilityModel(params)
        report["iterations"] = fit.iterations
    else:
        ConsensusModel.objects.filter(project=project).delete()
    statuses = [
        ImageStatus.UNLABELED,
        ImageStatus.PARTIAL,
        ImageStatus.DISPUTED,
        ImageStatus.LABELED,
    ]
    reached, relabeled = _rejudge(project, sorted(multi), statuses, model, chunk)
    report.update(reached=reached, relabeled=relabeled, weighted=model is not None)
    return report
