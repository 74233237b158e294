"""Reads for exports: a project's images in keyset-paginated chunks, and each chunk's
annotations, model versions and label reviews in one query each, so an export's memory does
not grow with the project and no query grows with it either."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from labeling.annotations.models import Annotation, LabelReview, ReviewState
from labeling.images.models import Image
from labeling.learning.models import ImageScore
from labeling.projects.models import Project

# Rows per query: big enough that the round trips do not dominate (50 queries for 100,000
# images), small enough that a chunk with its annotations stays around a megabyte.
CHUNK_SIZE = 2_000

IMAGE_FIELDS = (
    "id",
    "original_name",
    "sha256",
    "storage_key",
    "format",
    "width",
    "height",
    "size_bytes",
    "status",
    "consensus_label",
    "agreement",
    "annotation_count",
    "predicted_label",
    "confidence",
    "uncertainty",
    "created_at",
)


def export_image_chunks(
    *, project: Project, labeled_only: bool, chunk_size: int | None = None
) -> Iterator[list[dict[str, Any]]]:
    """The project's images as dicts, ``chunk_size`` at a time, in id order.

    Keyset pagination (``id > last``), not OFFSET: every query costs the same however deep
    into the project it is. Not a snapshot: an image labeled while the export runs shows
    its state at the moment its chunk was read.
    """
    chunk_size = chunk_size or CHUNK_SIZE
    images = Image.objects.filter(project=project)
    if labeled_only:
        images = images.filter(consensus_label__isnull=False)
    last = 0
    while True:
        rows = list(images.filter(id__gt=last).order_by("id").values(*IMAGE_FIELDS)[:chunk_size])
        if not rows:
            return
        yield rows
        if len(rows) < chunk_size:
            return
        last = rows[-1]["id"]


def _chunk_images(*, project: Project, rows: list[dict[str, Any]], labeled_only: bool):
    """Filters, through the image foreign key, for the images of one chunk: the id range
    under the chunk query's own conditions, which are exactly the chunk's images (keyset
    order). A range, not ``IN (2,000 ids)``: binding that many parameters one by one costs
    more than running the query."""
    where: dict[str, Any] = {
        "image__project": project,
        "image_id__gte": rows[0]["id"],
        "image_id__lte": rows[-1]["id"],
    }
    if labeled_only:
        where["image__consensus_label__isnull"] = False
    return where


def export_annotations_by_image(
    *, project: Project, rows: list[dict[str, Any]], labeled_only: bool
) -> dict[int, list[dict[str, Any]]]:
    """Every annotation of a chunk's images, oldest first, grouped by image: one query."""
    grouped: dict[int, list[dict[str, Any]]] = defaultdict(list)
    annotations = (
        Annotation.objects.filter(
            **_chunk_images(project=project, rows=rows, labeled_only=labeled_only)
        )
        .order_by("image_id", "created_at", "id")
        .values_list(
            "image_id", "annotator__username", "label", "source", "created_at", "discarded_at"
        )
    )
    for image_id, user, label, source, created, discarded in annotations:
        grouped[image_id].append(
            {
                "user": user,
                "label": label,
                "source": source,
                "created": created,
                # A reviewer sent the image back: the vote is on record but does not count.
                "discarded": discarded is not None,
            }
        )
    return grouped


def export_versions_by_image(
    *, project: Project, rows: list[dict[str, Any]], labeled_only: bool
) -> dict[int, tuple[int, int]]:
    """The model version (number, id) behind each prediction of a chunk: one query.

    A query of its own rather than a join in the chunk query: joined, PostgreSQL merges
    the whole score table up to the chunk on every chunk. ImageScore is replaced with each
    scoring, in the transaction that writes the image's predicted_label (learning/writeback.py).
    """
    scores = ImageScore.objects.filter(
        **_chunk_images(project=project, rows=rows, labeled_only=labeled_only)
    ).values_list("image_id", "model_version__number", "model_version_id")
    return {image_id: (number, version_id) for image_id, number, version_id in scores}


def export_reviews_by_image(
    *, project: Project, rows: list[dict[str, Any]], labeled_only: bool
) -> dict[int, dict[str, Any]]:
    """Each reviewed image's review for the export's quality fields: its open review, else
    its latest one (state, score, who decided, the label set). One query a chunk."""
    reviews = (
        LabelReview.objects.filter(
            **_chunk_images(project=project, rows=rows, labeled_only=labeled_only)
        )
        .order_by("image_id", "id")
        .values_list("image_id", "state", "score", "decided_by__username", "label_after")
    )
    chosen: dict[int, dict[str, Any]] = {}
    for image_id, state, score, decided_by, label_after in reviews:
        current = chosen.get(image_id)
        if current is not None and current["state"] == ReviewState.OPEN:
            continue  # the open review is the one that says how the label stands now
        chosen[image_id] = {
            "state": state,
            "score": score,
            "decided_by": decided_by,
            "label_after": label_after or None,
        }
    return chosen
