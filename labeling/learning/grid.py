"""Grid labeling: a page of alike images the annotator confirms with one key.

The queue decides what a page is worth. Where the active model is sure (at least
``LABELLOOP_GRID_MIN_CONFIDENCE`` on its class) of enough images still needing the user's
label, it serves a page of them: one predicted class (the most common among the surest),
seeded by its surest image and filled with that image's nearest neighbours in embedding space
among the confident ones (``similar.similar_source``: the backbone's embeddings, or the
active model's features), shown surest first with the class proposed on top. Where it is not,
it says why and the annotator labels single images, most uncertain first, where a label
teaches the model most. A page keeps the queue's exploration rule: each cell is, with
probability ``exploration_fraction``, an image drawn uniformly from the pool instead (marked
so, proposed its own predicted class), so the random slice that keeps evaluation unbiased
still grows while people label pages. Gold questions are not mixed into pages.

An explicit selection (the embedding map's lasso) leases those of the images asked for that
are still eligible, whatever the model's confidence. A prefetch (the client asking for the next
page while one shows) leaves out every image already leased to the user, where a plain
request takes those back (a reloaded page comes back whole).

    .venv/bin/python -m pytest tests/labeling/learning/test_grid.py -q
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from labeling.annotations.pages import task_lease_explore, task_lease_page
from labeling.annotations.queue_sql import PAGE_FILTER, QUEUE_FILTER
from labeling.annotations.services import Task
from labeling.core.errors import Conflict
from labeling.images.models import Image
from labeling.learning.models import ModelVersion
from labeling.learning.similar import decode_vectors, similar_source
from labeling.projects.models import Project

SIZE_DEFAULT = 24
SIZE_MIN = 4
SIZE_MAX = 48
SELECTION_MAX = 200
# A page is served only with at least this many confident alike images (or the page size,
# if smaller): fewer, and one key saves little over labeling them singly.
MIN_ALIKE = 8
# The surest images of the class read to build the page from (its neighbours are among them).
CANDIDATES = 400
# The surest images of the pool whose most common class is the page's.
SURE_SAMPLE = 1000
# A page ahead, or a selection of images the caller does not hold, leases new images where a
# plain request hands back the caller's own: past this many live leases in the project (a
# full page on screen and one whose labels are on their way) it is refused.
HELD_MAX = 2 * SIZE_MAX

# The page's class and its candidates, among the images still needing the user's label: with
# the user's own leases (a reloaded page comes back), or for a page ahead without them.
_CLASS_SQL = (
    "SELECT label, count(*) FROM (SELECT i.predicted_label AS label "
    "FROM images_image i WHERE {where} "
    "AND i.predicted_label IS NOT NULL AND i.confidence >= %(threshold)s "
    "ORDER BY i.confidence DESC LIMIT %(sample)s) surest "
    "GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
)
_ALIKE_SQL = (
    "SELECT i.id FROM images_image i WHERE {where} "
    "AND i.predicted_label = %(label)s AND i.confidence >= %(threshold)s "
    "ORDER BY i.confidence DESC, i.random_key LIMIT %(limit)s"
)
CLASS_SQL = _CLASS_SQL.format(where=PAGE_FILTER)
CLASS_AHEAD_SQL = _CLASS_SQL.format(where=QUEUE_FILTER)
ALIKE_SQL = _ALIKE_SQL.format(where=PAGE_FILTER)
ALIKE_AHEAD_SQL = _ALIKE_SQL.format(where=QUEUE_FILTER)

MESSAGES = {
    "suggestions_off": (
        "Suggestions are off in this project's settings. A grid proposes the model's class "
        "for a page of images, so it needs them on."
    ),
    "no_model": "There is no model yet. Grids start once the first round has trained.",
    "no_confident_page": (
        "The model is sure ({threshold:.0%} or more) of fewer than {minimum} images that "
        "still need your label. Label single images: the uncertain ones teach it most."
    ),
    "nothing_selected": (
        "None of the selected images needs your label now: they are labeled, held by "
        "someone else, or skipped by you."
    ),
}


@dataclass(frozen=True)
class GridPage:
    grid: bool
    reason: str  # "" when grid, else one of MESSAGES' codes
    message: str
    proposed: str | None
    min_confidence: float
    tasks: list[Task]


def grid_page_lease(
    *,
    project: Project,
    user: AbstractBaseUser,
    size: int = SIZE_DEFAULT,
    images: list[int] | None = None,
    rng: random.Random | None = None,
    probe: bool = False,
    prefetch: bool = False,
) -> GridPage:
    """Lease ``user`` a page of up to ``size`` alike images, or say why there is none;
    ``probe``: only say whether there would be one now (its class), leasing nothing;
    ``prefetch``: a page of none of the images already leased to ``user``."""
    rng = rng or random
    threshold = settings.LABELLOOP_GRID_MIN_CONFIDENCE
    if prefetch or images is not None:
        _refuse_hoarding(project, user, images)
    if images is not None:
        return _selection(project, user, size, images, threshold)
    if not project.show_suggestions:
        return _none("suggestions_off", threshold)
    if not ModelVersion.objects.filter(project=project, is_active=True).exists():
        return _none("no_model", threshold)
    minimum = min(size, MIN_ALIKE)
    with transaction.atomic():
        label = _page_class(project, user, threshold, minimum, ahead=prefetch)
        if label is None:
            return _none("no_confident_page", threshold, minimum=minimum)
        if probe:
            return GridPage(True, "", "", label, threshold, [])
        explore = sum(rng.random() < project.exploration_fraction for _ in range(size))
        explore = min(explore, size - minimum)  # the page stays mostly alike
        ids = _alike(project, user, label, threshold, size - explore, ahead=prefetch)
        tasks = task_lease_page(project=project, user=user, ids=ids, count=len(ids))
        for task in task_lease_explore(project=project, user=user, count=explore, rng=rng):
            tasks.insert(rng.randint(0, len(tasks)), task)
    if not tasks:  # another annotator leased the same images a moment before
        return _none("no_confident_page", threshold, minimum=minimum)
    return GridPage(True, "", "", label, threshold, tasks)


def _refuse_hoarding(project: Project, user, images: list[int] | None) -> None:
    """A 409 for a request that would lease more images to a caller who already holds more
    than ``HELD_MAX`` in the project (a selection that only takes back their own is fine)."""
    held = Image.objects.filter(project=project, leased_to=user, lease_expires__gt=timezone.now())
    count = held.count()
    if count <= HELD_MAX:
        return
    if images is not None and not set(images) - set(held.values_list("id", flat=True)):
        return
    raise Conflict(
        f"you hold {count} images of this project already (more than {HELD_MAX}): label or "
        "give back some of them before asking for more pages",
        code="too_many_leases",
    )


def _none(reason: str, threshold: float, minimum: int = MIN_ALIKE) -> GridPage:
    message = MESSAGES[reason].format(threshold=threshold, minimum=minimum)
    return GridPage(False, reason, message, None, threshold, [])


def _page_class(
    project: Project, user, threshold: float, minimum: int, *, ahead: bool
) -> str | None:
    """The predicted class most common among the ``SURE_SAMPLE`` surest images still needing
    ``user``'s label (read on the ``image_surest`` index, so the same at 1M images as at 1k),
    if it has at least ``minimum`` of them; ``ahead``: not counting the user's own leases."""
    class_sql = CLASS_SQL
    if ahead:
        class_sql = CLASS_AHEAD_SQL
    with connection.cursor() as cursor:
        cursor.execute(
            class_sql,
            {"project": project.id, "user": user.pk, "threshold": threshold, "sample": SURE_SAMPLE},
        )
        row = cursor.fetchone()
    if row is None or row[1] < minimum or row[0] not in project.labels:
        return None
    return row[0]


def _alike(
    project: Project, user, label: str, threshold: float, count: int, *, ahead: bool
) -> list[int]:
    """``count`` confident images of ``label``: the surest one and its nearest neighbours in
    embedding space (by confidence alone where the project has no embeddings yet)."""
    alike_sql = ALIKE_SQL
    if ahead:
        alike_sql = ALIKE_AHEAD_SQL
    with connection.cursor() as cursor:
        cursor.execute(
            alike_sql,
            {
                "project": project.id,
                "user": user.pk,
                "label": label,
                "threshold": threshold,
                "limit": CANDIDATES,
            },
        )
        candidates = [row[0] for row in cursor.fetchall()]
    source = similar_source(project)
    if source is None or len(candidates) <= count:
        return candidates[:count]
    found = dict(source.rows().filter(image_id__in=candidates).values_list("image_id", "vector"))
    if candidates[0] not in found:
        return candidates[:count]
    with_vector = [i for i in candidates if i in found]
    _, vectors = decode_vectors(with_vector, [bytes(found[i]) for i in with_vector])
    vectors = vectors.astype(np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    distance = 1.0 - vectors @ vectors[0]
    nearest = [with_vector[i] for i in np.argsort(distance, kind="stable")[:count]]
    # Images not embedded yet (added since the last pass) fill a short page, surest first.
    return nearest + [i for i in candidates if i not in found][: count - len(nearest)]


def _selection(project: Project, user, size: int, images: list[int], threshold: float):
    """The images asked for (a lasso), those still eligible, surest first."""
    with transaction.atomic():
        tasks = task_lease_page(project=project, user=user, ids=images, count=size)
    if not tasks:
        return _none("nothing_selected", threshold)
    votes = Counter(task.suggestion for task in tasks if task.suggestion is not None)
    proposed = votes.most_common(1)[0][0] if votes else None
    return GridPage(True, "", "", proposed, threshold, tasks)
