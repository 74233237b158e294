"""Writes for the labeling queue: leasing tasks, submitting labels, consensus, review.

Correct under concurrency by construction: a lease is taken by one statement that locks the
rows it picks (``FOR UPDATE SKIP LOCKED``), so two annotators never get the same image at the
same moment; a submission locks its image row, so counts and consensus never race; and a
``client_id`` is unique in the database, so a retried submission can never become two rows.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling.annotations import gold
from labeling.annotations.consensus import CONSENSUS_FIELDS, apply_consensus
from labeling.annotations.lease_log import lease_log_end
from labeling.annotations.models import Annotation, AnnotationSource, AnnotationView, LeaseLog
from labeling.annotations.queue_sql import LEASE_SQL, MINE_SQL, QUEUE_FILTER
from labeling.core import events
from labeling.core.errors import Conflict, ValidationFailed
from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.projects.labels import label_resolve
from labeling.projects.models import Project

MAX_TASKS = 50


@dataclass(frozen=True)
class Task:
    image_id: int
    lease_expires: datetime
    exploration: bool
    suggestion: str | None
    name: str = ""  # the file name it was uploaded as (the annotator's context strip)
    confidence: float | None = None  # the model's probability of its class (grid pages)


def task_lease_next(
    *, project: Project, user: AbstractBaseUser, count: int, rng: random.Random | None = None
) -> list[Task]:
    """Lease up to ``count`` images to ``user``, best first; an empty list when none is left.

    A share ``exploration_fraction`` of new tasks is drawn uniformly at random from the
    eligible pool (and marked so), which keeps evaluation unbiased. A share ``gold_rate`` are
    gold questions (``annotations.gold``), at random places in the batch and alike in every
    field.
    """
    if not 1 <= count <= MAX_TASKS:
        raise ValidationFailed(
            f"count must be between 1 and {MAX_TASKS}, got {count}", code="count"
        )
    rng = rng or random
    params = {"project": project.id, "user": user.pk, "ttl": project.lease_seconds}
    suggest = project.show_suggestions
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(MINE_SQL, {**params, "count": count})
        mine = sorted(cursor.fetchall(), key=lambda row: (-row[4], row[5]))
        tasks = [Task(row[0], row[1], row[2], row[3] if suggest else None, row[6]) for row in mine]
        held = len(tasks)
        golden = [
            Task(
                g.image_id,
                g.lease_expires,
                g.exploration,
                g.predicted_label if suggest else None,
                g.name,
            )
            for g in gold.gold_lease(
                cursor, project=project, user=user, wanted=count - held, rng=rng
            )
        ]
        wanted = count - held - len(golden)
        explore = sum(rng.random() < project.exploration_fraction for _ in range(wanted))
        if explore:
            tasks += lease_random(cursor, params, explore, rng.random(), suggest)
        if len(tasks) < count - len(golden):
            tasks += _lease(
                cursor,
                {**params, "count": count - len(golden) - len(tasks), "exploration": False},
                order="priority DESC, random_key",
                suggest=suggest,
            )
    if golden:
        tasks = tasks[:held] + gold.gold_mix(tasks[held:], golden, rng)
    return tasks


def _lease(cursor, params: dict, *, order: str, suggest: bool, extra: str = "") -> list[Task]:
    sql = LEASE_SQL.format(where=QUEUE_FILTER, extra=extra, order=order)
    cursor.execute(sql, params)
    return [
        Task(row[0], row[1], params["exploration"], row[2] if suggest else None, row[3])
        for row in cursor.fetchall()
    ]


def lease_random(cursor, params: dict, count: int, start: float, suggest: bool) -> list[Task]:
    """Uniform sample from the eligible pool: the rows after a random point on the
    ``random_key`` index, wrapping around to the start when the tail is too short."""
    base = {**params, "exploration": True, "start": start}
    tasks = _lease(
        cursor,
        {**base, "count": count},
        order="random_key",
        suggest=suggest,
        extra="AND random_key >= %(start)s",
    )
    if len(tasks) < count:
        tasks += _lease(
            cursor,
            {**base, "count": count - len(tasks)},
            order="random_key",
            suggest=suggest,
            extra="AND random_key < %(start)s",
        )
    return tasks


def task_renew(*, image: Image, user: AbstractBaseUser) -> Image:
    """Extend the caller's own live lease (the UI heartbeats). Only ``tasks/next`` creates a
    lease: anything else is a 409 that says why (``no_lease``, ``lease_expired``,
    ``lease_lost``), so nobody can reserve images the queue did not hand them."""
    with transaction.atomic():
        locked = Image.objects.select_for_update().get(pk=image.pk)
        now = timezone.now()
        live = locked.lease_expires is not None and locked.lease_expires > now
        if locked.leased_to_id != user.pk or not live:
            raise _renew_refusal(locked, user, live=live)
        if not gold.gold_task_open(locked, user) and (
            locked.status not in QUEUE_STATUSES
            or Annotation.objects.filter(
                image=locked, annotator=user, discarded_at__isnull=True
            ).exists()
        ):
            raise Conflict("this image needs no more labels from you", code="not_needed")
        expires = now + timezone.timedelta(seconds=locked.project.lease_seconds)
        # Only the live lease's log row (see MINE_SQL).
        LeaseLog.objects.filter(
            image=locked, user=user, ended_at__isnull=True, expires_at__gt=now
        ).update(expires_at=expires)
        locked.lease_expires = expires
        locked.save(update_fields=["lease_expires"])
    return locked


def _renew_refusal(image: Image, user: AbstractBaseUser, *, live: bool) -> Conflict:
    if live:
        return Conflict("another annotator holds this image now", code="lease_lost")
    mine_lapsed = image.leased_to_id == user.pk or (
        LeaseLog.objects.filter(image=image, user=user, ended_at__isnull=True).exists()
    )
    if mine_lapsed:
        return Conflict(
            "your lease on this image has expired; ask for new tasks", code="lease_expired"
        )
    return Conflict("you hold no lease on this image; leases come from tasks/next", code="no_lease")


def task_release(*, image: Image, user: AbstractBaseUser, skip: bool = True) -> None:
    """Give a leased image back: it is eligible again for everyone else at once. A skip (the
    default) sticks: the queue does not serve it to ``user`` again for
    ``lease_log.SKIP_HOLD_SECONDS``; ``skip=False`` only gives the lease back (a client
    returning tasks it prefetched and will not show)."""
    with transaction.atomic():
        updated = Image.objects.filter(pk=image.pk, leased_to=user).update(
            leased_to=None, lease_expires=None, lease_exploration=False
        )
        if not updated:
            raise Conflict("you do not hold a lease on this image", code="no_lease")
        lease_log_end(image_id=image.pk, user_ids=[user.pk], skipped=skip)


@dataclass(frozen=True)
class Submission:
    annotation: Annotation
    created: bool  # False: a replay of an earlier submission with the same client_id


def _lock_image_and_classes(image_id: int) -> tuple[Image, list[str], list[list[str]]]:
    """The image, locked FOR UPDATE, and its project's classes and renames as committed now,
    under the project row's KEY SHARE lock that a class rename (FOR UPDATE) waits for: one
    statement, so the rename-safety costs a submit no extra round trip."""
    rows = list(
        Image.objects.raw(
            "SELECT i.*, p.labels AS project_labels, p.label_renames AS project_renames "
            "FROM images_image i JOIN projects_project p ON p.id = i.project_id "
            "WHERE i.id = %s FOR UPDATE OF i FOR KEY SHARE OF p",
            [image_id],
        )
    )
    if not rows:
        raise Image.DoesNotExist(f"image {image_id} no longer exists")
    row = rows[0]
    renames = row.project_renames
    if isinstance(renames, str):  # a raw query hands jsonb back as text
        renames = json.loads(renames)
    return row, list(row.project_labels), renames


def _current_label(label: str, labels: list[str], renames: list[list[str]]) -> str:
    named = label_resolve(label, labels, renames)
    if named is None:
        raise ValidationFailed(
            f"label {label!r} is not one of the project's classes: {', '.join(labels)}",
            code="unknown_label",
        )
    return named


def annotation_submit(
    *,
    image: Image,
    user: AbstractBaseUser,
    label: str,
    client_id: uuid.UUID,
    duration_ms: int | None = None,
    source: str = AnnotationSource.MANUAL,
    view: str = AnnotationView.SINGLE,
) -> Submission:
    """Record ``user``'s label for ``image``; idempotent on ``client_id``.

    Accepted with a live lease; after a lapsed lease (or none) only while the image still
    needs annotations. An annotator may change their own label: a new row, history kept,
    the latest counts. A client_id seen before answers with the original row. Five round
    trips (six when the consensus changes: ``image.labeled``); the one that locks the image
    also reads the project's classes, under the lock a class rename waits for."""
    project = image.project
    _current_label(label, project.labels, project.label_renames)  # refused before a transaction
    try:
        with transaction.atomic():
            locked, labels, renames = _lock_image_and_classes(image.pk)
            # A class renamed since (or before, by a client that still has the old list) is
            # stored under its name now.
            label = _current_label(label, labels, renames)
            history = list(Annotation.objects.filter(image=locked).order_by("created_at", "id"))
            replayed = next((a for a in history if a.client_id == client_id), None)
            if replayed is not None:
                return _replay(replayed, image=image, user=user)
            # Votes a reviewer sent back no longer count: their author votes afresh.
            mine = [a for a in history if a.annotator_id == user.pk and a.discarded_at is None]
            if locked.gold_label is not None and not mine and source == AnnotationSource.MANUAL:
                # A gold question: an answer, never a label (annotations.gold).
                given = {"label": label, "client_id": client_id, "duration_ms": duration_ms}
                answered = gold.gold_answer_submit(image=locked, user=user, **given)
                return Submission(annotation=answered.annotation, created=answered.created)
            if mine and mine[-1].label == label and mine[-1].source == source:
                # The same label again (a second tab, a re-sent form): nothing changes.
                return Submission(annotation=mine[-1], created=False)
            answer = gold.gold_replay(client_id=client_id, image=locked, user=user)
            if answer is not None:  # an answer given while it was a gold question
                return Submission(annotation=answer, created=False)
            if not mine and source == AnnotationSource.MANUAL:
                _check_vote_welcome(locked, user)
            annotation = Annotation.objects.create(
                image=locked,
                annotator=user,
                label=label,
                client_id=client_id,
                duration_ms=duration_ms,
                source=source,
                view=view,
            )
            history.append(annotation)
            consensus_before = locked.consensus_label
            ended = []
            if locked.leased_to_id == user.pk:
                locked.in_random_slice |= locked.lease_exploration
                ended.append(user.pk)
            apply_consensus(locked, project, history)
            if locked.status not in QUEUE_STATUSES and locked.leased_to_id not in (None, user.pk):
                # Done: whoever else held it is released (their submission will get a 409).
                ended.append(locked.leased_to_id)
            if ended:
                locked.leased_to_id, locked.lease_expires = None, None
                locked.lease_exploration = False
                lease_log_end(image_id=locked.pk, user_ids=ended)
            locked.save(update_fields=CONSENSUS_FIELDS)
            if locked.status == ImageStatus.LABELED and locked.consensus_label != consensus_before:
                # Announced (image.labeled) and counted toward retrain_every.
                events.images_labeled.send(
                    sender=Annotation, project=project, images=[locked], source=source, user=user
                )
    except IntegrityError:
        # The same client_id raced in from a retry on another connection and won.
        existing = Annotation.objects.filter(client_id=client_id).first()
        if existing is None:
            raise
        return _replay(existing, image=image, user=user)
    return Submission(annotation=annotation, created=True)


def _replay(existing: Annotation, *, image: Image, user: AbstractBaseUser) -> Submission:
    if existing.annotator_id != user.pk or existing.image_id != image.pk:
        raise Conflict(
            "this client_id was already used for a different annotation", code="client_id_reused"
        )
    return Submission(annotation=existing, created=False)


def _check_vote_welcome(image: Image, user: AbstractBaseUser) -> None:
    """A first label from this annotator counts only while the image still needs labels and
    nobody else holds a live lease on it; the caller's own lease, live or lapsed, or none,
    does not change that, so no image ever gets more than it needs and no one's task is
    taken from under them."""
    now = timezone.now()
    if image.status not in QUEUE_STATUSES:
        raise Conflict(
            "this image already has all the annotations it needs; nothing was recorded "
            f"({_lease_story(image, user, now)})",
            code="not_needed",
        )
    if image.leased_to_id not in (None, user.pk) and (image.lease_expires or now) > now:
        raise Conflict(
            "another annotator holds a lease on this image now; nothing was recorded",
            code="leased_to_another",
            details={"lease_expires": image.lease_expires.isoformat()},
        )


def _lease_story(image: Image, user: AbstractBaseUser, now: datetime) -> str:
    """What became of the caller's lease on an image that was finished without them: the
    409 must not tell the real holder their lease had expired when an admin ended it."""
    last = LeaseLog.objects.filter(image=image, user=user).order_by("-leased_at").first()
    if last is None:
        return "you held no lease on it"
    if last.expires_at <= (last.ended_at or now):  # it ran out before anything ended it
        return "your lease had expired"
    return "your lease ended before your label arrived"


def annotation_resolve(*, image: Image, admin: AbstractBaseUser, label: str) -> Annotation:
    """A project admin sets the final label of a disputed (or any) image."""
    submission = annotation_submit(
        image=image,
        user=admin,
        label=label,
        client_id=uuid.uuid4(),
        source=AnnotationSource.RESOLUTION,
    )
    return submission.annotation
