"""Leasing a page of given images at once (grid labeling, ``learning/grid.py`` picks them).

The leases are the queue's own: the same eligibility (``queue_sql.PAGE_FILTER``: still
needing the user's label, not skipped by them lately, not held by anyone else), the same
``lease_seconds``, the same lease log, renewed and released by the same endpoints, and the
labels arrive through the same idempotent ``annotation_submit``. The images the caller holds
already are taken again, so a reloaded page gets its images back instead of waiting for its
own leases to run out.
"""

from __future__ import annotations

import random

from django.contrib.auth.models import AbstractBaseUser
from django.db import connection

from labeling.annotations.queue_sql import LEASE_IDS_SQL, PAGE_FILTER
from labeling.annotations.services import Task, lease_random
from labeling.projects.models import Project

# Pages in confidence order, the surest first; images without a prediction last.
BY_CONFIDENCE = "i.confidence DESC NULLS LAST, i.random_key"


def task_lease_page(
    *, project: Project, user: AbstractBaseUser, ids: list[int], count: int
) -> list[Task]:
    """Lease to ``user`` at most ``count`` of the images ``ids`` (of ``project``) that are
    still eligible, surest first. Call it inside a transaction, with ``task_lease_explore``
    where the page has exploration picks."""
    if not ids or count < 1:
        return []
    params = {
        "project": project.id,
        "user": user.pk,
        "ttl": project.lease_seconds,
        "ids": list(ids),
        "count": count,
    }
    suggest = project.show_suggestions
    with connection.cursor() as cursor:
        cursor.execute(LEASE_IDS_SQL.format(where=PAGE_FILTER, order=BY_CONFIDENCE), params)
        rows = cursor.fetchall()
    # The statement's RETURNING has no order: put the page back in confidence order.
    rows.sort(key=lambda row: (row[4] is None, -(row[4] or 0.0)))
    return [
        Task(
            image_id=row[0],
            lease_expires=row[1],
            exploration=False,
            suggestion=row[2] if suggest else None,
            name=row[3],
            confidence=row[4] if suggest else None,
        )
        for row in rows
    ]


def task_lease_explore(
    *, project: Project, user: AbstractBaseUser, count: int, rng: random.Random
) -> list[Task]:
    """The page's exploration share: ``count`` images drawn uniformly from the eligible pool
    and marked so, exactly as ``tasks/next`` draws them (their labels keep the random slice
    that evaluation needs unbiased)."""
    if count < 1:
        return []
    params = {"project": project.id, "user": user.pk, "ttl": project.lease_seconds}
    with connection.cursor() as cursor:
        return lease_random(cursor, params, count, rng.random(), project.show_suggestions)
