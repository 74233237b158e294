"""32 threads (separate PostgreSQL connections) acting as 8 annotators label 2,000 images
three times each, with replayed submissions and leases that run out mid-thought.

Nothing may be lost, doubled, or held by two people at once.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import defaultdict

import pytest
from django.db import connection, connections, transaction

from labeling.annotations.models import Annotation
from labeling.annotations.services import annotation_submit, task_lease_next
from labeling.core.errors import Conflict
from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.projects.models import Membership, Project, Role
from tests.factories import UserFactory

IMAGES = 2000
ANNOTATORS = 8
THREADS_PER_ANNOTATOR = 4
OVERLAP = 3


def truth(image_id: int) -> str:
    return str(image_id % 10)


def expire_my_lease(image_id: int, user_id: int) -> None:
    """Fault injection: this lease runs out now (as if the annotator went for coffee)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE images_image SET lease_expires = now() - interval '1 millisecond' "
            "WHERE id = %s AND leased_to_id = %s RETURNING lease_expires",
            [image_id, user_id],
        )
        row = cursor.fetchone()
        if row:
            # Only the live lease's log row: an older lease of the same person on the same
            # image that simply ran out has no ended_at either, and moving its end would make
            # the log claim they held the image while a colleague did (the renewal's rule).
            cursor.execute(
                "UPDATE annotations_leaselog SET expires_at = %s WHERE id = ("
                "SELECT max(id) FROM annotations_leaselog "
                "WHERE image_id = %s AND user_id = %s AND ended_at IS NULL)",
                [row[0], image_id, user_id],
            )


@pytest.mark.django_db(transaction=True)
def test_many_annotators_at_once_lose_nothing_and_double_nothing():
    project = Project.objects.create(
        name="Concurrent",
        slug="concurrent",
        labels=[str(i) for i in range(10)],
        annotations_per_image=OVERLAP,
        exploration_fraction=0.1,
    )
    Image.objects.bulk_create(
        Image(
            project=project,
            sha256=f"{i:064x}",
            storage_key=f"k/{i}",
            width=28,
            height=28,
            mode="L",
            format="PNG",
            original_name=f"{i}.png",
            size_bytes=100,
            priority=random.random(),
        )
        for i in range(IMAGES)
    )
    users = [UserFactory(username=f"annotator{i}") for i in range(ANNOTATORS)]
    Membership.objects.bulk_create(
        Membership(project=project, user=u, role=Role.ANNOTATOR) for u in users
    )
    acknowledged: dict[uuid.UUID, tuple[int, int]] = {}
    refused = defaultdict(int)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def annotator(user, seed: int) -> None:
        rng = random.Random(seed)
        try:
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                tasks = task_lease_next(
                    project=project, user=user, count=rng.randint(1, 5), rng=rng
                )
                if not tasks:
                    # Nothing for me right now: the rest may be leased by colleagues and come
                    # back needing my label. Stop only when nothing needs a label at all.
                    if not Image.objects.filter(
                        project=project, status__in=QUEUE_STATUSES
                    ).exists():
                        break
                    time.sleep(0.02)
                    continue
                for task in tasks:
                    if rng.random() < 0.05:
                        expire_my_lease(task.image_id, user.pk)
                    client_id = uuid.uuid4()
                    image = Image.objects.select_related("project").get(pk=task.image_id)
                    for _attempt in range(2 if rng.random() < 0.3 else 1):  # a retried POST
                        try:
                            result = annotation_submit(
                                image=image,
                                user=user,
                                label=truth(task.image_id),
                                client_id=client_id,
                            )
                        except Conflict as exc:
                            with lock:
                                refused[exc.code] += 1
                            break
                        with lock:
                            acknowledged[client_id] = (result.annotation.id, task.image_id)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=annotator, args=(user, i * 100 + j))
        for i, user in enumerate(users)
        for j in range(THREADS_PER_ANNOTATOR)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors[:3]
    assert not any(t.is_alive() for t in threads)

    # Every image: exactly three annotations, from three different people, consensus reached.
    rows = list(
        Annotation.objects.filter(image__project=project).values_list(
            "image_id", "annotator_id", "client_id", "id"
        )
    )
    per_image = defaultdict(list)
    for image_id, annotator_id, _client_id, _id in rows:
        per_image[image_id].append(annotator_id)
    assert len(per_image) == IMAGES
    assert all(len(a) == OVERLAP and len(set(a)) == OVERLAP for a in per_image.values())
    assert Image.objects.filter(project=project).exclude(status=ImageStatus.LABELED).count() == 0

    # Zero lost: every acknowledged submission is there; zero duplicates: one row each.
    # (A same-label resubmission by the same annotator from another thread -- a second tab --
    # is acknowledged with the row that already holds that label.)
    by_client = {
        client_id: (annotation_id, image_id) for image_id, _a, client_id, annotation_id in rows
    }
    stored = {annotation_id: image_id for image_id, _a, _c, annotation_id in rows}
    assert len(by_client) == len(rows)
    assert len(acknowledged) >= len(rows)
    for annotation_id, image_id in acknowledged.values():
        assert stored[annotation_id] == image_id
    assert len(rows) == IMAGES * OVERLAP
    # Refusals are the explicit 409s for work that was no longer needed, or for a lease that
    # ran out and went to a colleague who holds it now.
    assert set(refused) <= {"not_needed", "leased_to_another"}

    # No image was leased to two different people at overlapping times.
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM annotations_leaselog a
            JOIN annotations_leaselog b
              ON a.image_id = b.image_id AND a.user_id <> b.user_id AND a.id < b.id
            WHERE tstzrange(a.leased_at, GREATEST(a.leased_at, LEAST(a.ended_at, a.expires_at)))
               && tstzrange(b.leased_at, GREATEST(b.leased_at, LEAST(b.ended_at, b.expires_at)))
            """
        )
        (overlaps,) = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM annotations_leaselog")
        (leases,) = cursor.fetchone()
    assert leases >= IMAGES * OVERLAP
    assert overlaps == 0
    print(f"\n{len(rows)} annotations, {leases} leases, refused: {dict(refused)}")
