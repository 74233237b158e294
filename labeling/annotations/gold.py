"""Gold questions: images whose answer a project admin knows (``Image.gold_label``), mixed into
annotators' tasks at the project's ``gold_rate`` to measure them.

An annotator must not be able to tell a gold task from another through the API: it is leased
like any task (``Image.leased_to``, ``LeaseLog``, so renew and release work), its task has the
same fields, and an answer to it is submitted to ``POST /api/annotations/`` and answered like
a first vote. The answer is a ``GoldAnswer``, never an ``Annotation``: it never becomes a label,
never counts toward ``retrain_every`` and never changes the image. Its id is drawn from the
annotations' own sequence, so the id an answer is given cannot stand out among labels' ids.

    .venv/bin/python -m pytest tests/labeling/annotations/test_gold.py -q
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from labeling.annotations.consensus import CONSENSUS_FIELDS, apply_consensus
from labeling.annotations.lease_log import NOT_SKIPPED_SQL, lease_log_end
from labeling.annotations.models import Annotation, AnnotationSource, GoldAnswer
from labeling.core import events
from labeling.core.errors import Conflict, ValidationFailed
from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.images.selectors import gold_masked
from labeling.projects.labels import label_resolve, project_labels_for_write
from labeling.projects.models import Project

# An annotator's gold accuracy is judged (and announced: annotator.quality_low) only from
# this many answers on: below it one slip moves the accuracy by 10 points or more.
GOLD_ALERT_MIN_ANSWERS = 10
# The images_labeled source when an admin's gold label labels an image.
GOLD = "gold"


# --- marking --------------------------------------------------------------------------


def gold_mark(*, image: Image, label: str | None) -> Image:
    """Make ``image`` a gold question with the known answer ``label`` (a class of the project
    now, or a class's old name), or, with ``label=None``, an ordinary image again.

    The image is judged again at once: gold, it is labeled with its gold label (whatever its
    votes say; they stay on record); unmarked, its votes decide again and it may return to
    the queue. A judgement that labels it (or changes its label) sends ``images_labeled``
    (``image.labeled``, the retrain count) like any label; a lease on an image that left the
    queue ends. Answers already given to it stay: they measured their annotators.
    """
    with transaction.atomic():
        locked = Image.objects.select_for_update().select_related("project").get(pk=image.pk)
        project = locked.project
        if label is not None:
            labels, renames = project_labels_for_write(project)
            named = label_resolve(label, labels, renames)
            if named is None:
                raise ValidationFailed(
                    f"label {label!r} is not one of the project's classes: {', '.join(labels)}",
                    code="unknown_label",
                )
            label = named
        if locked.gold_label == label:
            return locked
        consensus_before = locked.consensus_label
        locked.gold_label = label
        history = list(Annotation.objects.filter(image=locked).order_by("created_at", "id"))
        apply_consensus(locked, project, history)
        if locked.status not in QUEUE_STATUSES and locked.leased_to_id is not None:
            # Labeled now: whoever held it for a vote is released (their answer, should it
            # come, is a gold answer).
            lease_log_end(image_id=locked.pk, user_ids=[locked.leased_to_id])
            locked.leased_to_id, locked.lease_expires = None, None
            locked.lease_exploration = False
        locked.save(update_fields=[*CONSENSUS_FIELDS, "gold_label"])
        if locked.status == ImageStatus.LABELED and locked.consensus_label != consensus_before:
            events.images_labeled.send(
                sender=Annotation, project=project, images=[locked], source=GOLD, user=None
            )
    return locked


# --- the queue ------------------------------------------------------------------------

# The gold questions ``user`` may be served: a gold image they have neither answered nor
# voted on (a vote before it became gold: they would know it), that nobody holds (or whose
# lease ran out). Picked on the image_gold partial index from a random point.
# The gold images from a random point on (after), then wrapping round (before it).
_GOLD_LEASE_SQL = """
WITH picked AS (
    SELECT i.id FROM images_image i
    WHERE i.project_id = %(project)s AND i.gold_label IS NOT NULL
      AND (i.lease_expires IS NULL OR i.lease_expires <= now())
      AND (i.random_key >= %(start)s) = %(after)s
      AND NOT EXISTS (
          SELECT 1 FROM annotations_goldanswer g
          WHERE g.image_id = i.id AND g.annotator_id = %(user)s
      )
      AND NOT EXISTS (
          SELECT 1 FROM annotations_annotation a
          WHERE a.image_id = i.id AND a.annotator_id = %(user)s
      )
      {not_skipped}
    ORDER BY i.random_key
    LIMIT %(count)s
    FOR UPDATE OF i SKIP LOCKED
), leased AS (
    UPDATE images_image i
    SET leased_to_id = %(user)s,
        lease_expires = now() + make_interval(secs => %(ttl)s),
        lease_exploration = %(exploration)s
    FROM picked WHERE i.id = picked.id
    RETURNING i.id, i.lease_expires, i.predicted_label, i.random_key, i.original_name
), logged AS (
    INSERT INTO annotations_leaselog (image_id, user_id, leased_at, expires_at, exploration)
    SELECT id, %(user)s, clock_timestamp(), lease_expires, %(exploration)s FROM leased
)
SELECT id, lease_expires, predicted_label, original_name FROM leased ORDER BY random_key
""".replace("{not_skipped}", NOT_SKIPPED_SQL)


@dataclass(frozen=True)
class GoldLease:
    image_id: int
    lease_expires: datetime
    exploration: bool
    predicted_label: str | None
    name: str


def gold_lease(
    cursor, *, project: Project, user: AbstractBaseUser, wanted: int, rng: random.Random
) -> list[GoldLease]:
    """Lease gold questions for a batch of ``wanted`` new tasks: each task is one with
    probability ``project.gold_rate`` (fewer when fewer are eligible), inside the caller's
    transaction. Each carries an ``exploration`` flag drawn like any task's, so the flag
    says nothing about it either."""
    if project.gold_rate <= 0 or wanted <= 0:
        return []
    count = sum(rng.random() < project.gold_rate for _ in range(wanted))
    if not count or not gold_masked(user=user, project=project):
        return []  # a project admin sees the answers: their answers would measure nothing
    explore = rng.random() < project.exploration_fraction
    params = {
        "project": project.pk,
        "user": user.pk,
        "ttl": project.lease_seconds,
        "exploration": explore,
        "start": rng.random(),
    }
    cursor.execute(_GOLD_LEASE_SQL, {**params, "after": True, "count": count})
    rows: list = cursor.fetchall()
    if len(rows) < count:
        cursor.execute(_GOLD_LEASE_SQL, {**params, "after": False, "count": count - len(rows)})
        rows += cursor.fetchall()
    return [GoldLease(row[0], row[1], explore, row[2], row[3]) for row in rows]


def gold_mix(tasks: list, gold: list, rng: random.Random) -> list:
    """``gold`` tasks put at random places among the new ``tasks`` of a batch."""
    mixed = list(tasks)
    for task in gold:
        mixed.insert(rng.randint(0, len(mixed)), task)
    return mixed


def gold_task_open(image: Image, user: AbstractBaseUser) -> bool:
    """A gold question ``user`` has not answered yet (its lease may be renewed)."""
    return (
        image.gold_label is not None
        and not GoldAnswer.objects.filter(image=image, annotator=user).exists()
        and not Annotation.objects.filter(image=image, annotator=user).exists()
    )


# --- answers --------------------------------------------------------------------------


@dataclass(frozen=True)
class GoldSubmission:
    annotation: Annotation  # unsaved: the answer as a label's response shows it
    created: bool


def _as_annotation(answer: GoldAnswer, user: AbstractBaseUser) -> Annotation:
    """The answer in a label's clothes, for the response (same fields, same types). Never
    saved: an answer is never a label."""
    return Annotation(
        id=answer.pk,
        image_id=answer.image_id,
        annotator=user,
        label=answer.label,
        client_id=answer.client_id,
        duration_ms=answer.duration_ms,
        source=AnnotationSource.MANUAL,
        created_at=answer.created_at,
    )


def gold_replay(*, client_id: uuid.UUID, image: Image, user: AbstractBaseUser) -> Annotation | None:
    """A ``client_id`` already used for a gold answer: the same answer again (this user,
    this image), else the ``409`` a label's reused client_id gets; None when unused."""
    answer = GoldAnswer.objects.filter(client_id=client_id).first()
    if answer is None:
        return None
    if answer.annotator_id != user.pk or answer.image_id != image.pk:
        raise Conflict(
            "this client_id was already used for a different annotation", code="client_id_reused"
        )
    return _as_annotation(answer, user)


def _next_annotation_id() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence('annotations_annotation', 'id'))")
        return cursor.fetchone()[0]


def gold_answer_submit(
    *,
    image: Image,
    user: AbstractBaseUser,
    label: str,
    client_id: uuid.UUID,
    duration_ms: int | None,
) -> GoldSubmission:
    """Record ``user``'s answer to the gold question ``image`` (locked FOR UPDATE by the
    caller, ``label`` already a current class), answered exactly as a label would be.

    - a ``client_id`` seen before: the same answer (``200``), or ``409`` ``client_id_reused``;
    - their first answer: recorded (``201``); while another annotator holds a live lease on
      it, the ``409`` ``leased_to_another`` a first vote gets;
    - the same label again: nothing changes (``200``); another label: it replaces the answer
      (``201``), as an annotator may change their own label (the latest counts).

    The lease ends as a label's would; the image does not change. When the answer takes the
    annotator's gold accuracy below ``project.gold_alert_accuracy``, ``annotator_quality_low``
    is sent (once per crossing).
    """
    project = image.project
    replayed = gold_replay(client_id=client_id, image=image, user=user)
    if replayed is not None:
        return GoldSubmission(annotation=replayed, created=False)
    used = Annotation.objects.filter(client_id=client_id).first()
    if used is not None:
        if used.annotator_id != user.pk or used.image_id != image.pk:
            raise Conflict(
                "this client_id was already used for a different annotation",
                code="client_id_reused",
            )
        return GoldSubmission(annotation=used, created=False)
    _lock_annotator(project, user)
    before = _tally(project, user)
    mine = GoldAnswer.objects.filter(image=image, annotator=user).first()
    if mine is not None and mine.label == label:
        return GoldSubmission(annotation=_as_annotation(mine, user), created=False)
    if mine is None:
        _check_not_held(image, user)
    fields = {
        "label": label,
        "expected": image.gold_label,
        "correct": label == image.gold_label,
        "client_id": client_id,
        "duration_ms": duration_ms,
    }
    new_id = _next_annotation_id()
    try:
        with transaction.atomic():
            if mine is None:
                answer = GoldAnswer.objects.create(id=new_id, image=image, annotator=user, **fields)
            else:
                # A changed answer is a new row to the client (a new id), as a changed label is.
                GoldAnswer.objects.filter(pk=mine.pk).update(
                    id=new_id, created_at=timezone.now(), **fields
                )
                answer = GoldAnswer.objects.get(pk=new_id)
    except IntegrityError:
        # The same client_id raced in from a retry on another connection and won.
        replayed = gold_replay(client_id=client_id, image=image, user=user)
        if replayed is None:
            raise
        return GoldSubmission(annotation=replayed, created=False)
    if image.leased_to_id == user.pk:
        Image.objects.filter(pk=image.pk).update(
            leased_to=None, lease_expires=None, lease_exploration=False
        )
        image.leased_to_id, image.lease_expires, image.lease_exploration = None, None, False
        lease_log_end(image_id=image.pk, user_ids=[user.pk])
    _maybe_alert(project, user, before, _tally(project, user))
    return GoldSubmission(annotation=_as_annotation(answer, user), created=True)


def _check_not_held(image: Image, user: AbstractBaseUser) -> None:
    # The words and code of services._check_vote_welcome's: the answer must read the same.
    now = timezone.now()
    if image.leased_to_id not in (None, user.pk) and (image.lease_expires or now) > now:
        raise Conflict(
            "another annotator holds a lease on this image now; nothing was recorded",
            code="leased_to_another",
            details={"lease_expires": image.lease_expires.isoformat()},
        )


def _lock_annotator(project: Project, user: AbstractBaseUser) -> None:
    """One gold answer of this annotator in this project at a time (until the transaction
    ends): two answers at once would each see the other's tally as it was, and the crossing
    of the alert threshold could be announced twice or never."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"labelloop:gold:{project.pk}:{user.pk}"],
        )


def _tally(project: Project, user: AbstractBaseUser) -> tuple[int, int]:
    row = GoldAnswer.objects.filter(image__project=project, annotator=user).aggregate(
        answered=Count("id"), correct=Count("id", filter=Q(correct=True))
    )
    return row["answered"], row["correct"]


def gold_below(tally: tuple[int, int], threshold: float) -> bool:
    """Whether an annotator's gold tally (answered, correct) is judged below ``threshold``:
    never with fewer than ``GOLD_ALERT_MIN_ANSWERS`` answers, never when it is 0 (off)."""
    answered, correct = tally
    return threshold > 0 and answered >= GOLD_ALERT_MIN_ANSWERS and correct / answered < threshold


def _maybe_alert(
    project: Project, user: AbstractBaseUser, before: tuple[int, int], after: tuple[int, int]
) -> None:
    threshold = project.gold_alert_accuracy
    if gold_below(after, threshold) and not gold_below(before, threshold):
        answered, correct = after
        events.annotator_quality_low.send(
            sender=GoldAnswer,
            project=project,
            user=user,
            answered=answered,
            correct=correct,
            accuracy=correct / answered,
            threshold=threshold,
        )
