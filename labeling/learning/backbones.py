"""Backbones on the database side: the registry (which backbone a project's rounds build on),
the stored backbone files, and every image's embedding from the newest backbone (float16
bytes in ``ImageEmbedding``). No torch here: the web side reads the registry too.

    .venv/bin/python -m pytest tests/labeling/learning/test_backbones.py -q
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from labeling.core.storage import file_sha256
from labeling.images.models import Image
from labeling.learning.models import Backbone, ImageEmbedding, ModelVersion, TrainingRun
from labeling.projects.models import Project

# Rows per INSERT of embeddings: ~1 MB of vectors at 512 float16 dimensions.
EMBED_BATCH = 1000


def backbone_newest(project: Project) -> Backbone | None:
    """The backbone the project's rounds use now: the newest one."""
    return Backbone.objects.filter(project=project).order_by("-number").first()


def backbone_register(
    *,
    project: Project,
    run: TrainingRun | None,
    source: str,
    path: str,
    info: dict,
    metrics: dict,
    origin: str = "",
    images_seen: int = 0,
) -> Backbone:
    """Store a backbone file and register it (inside the caller's transaction). A run that
    registered one before its worker died gets that one back, not a second."""
    if run is not None:
        existing = Backbone.objects.filter(run=run).first()
        if existing is not None:
            return existing
    digest = file_sha256(path)
    key = f"backbones/{project.slug}/backbone-{digest[:16]}.pt"
    if not default_storage.exists(key):
        with open(path, "rb") as handle:
            key = default_storage.save(key, File(handle))
    Project.objects.select_for_update().filter(pk=project.pk).first()  # numbers in order
    number = (Backbone.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0) + 1
    return Backbone.objects.create(
        project=project,
        run=run,
        number=number,
        source=source,
        origin=origin[:500],
        file_key=key,
        file_sha256=digest,
        arch=info["arch"],
        width=int(info["width"]),
        stem=info["stem"],
        input_size=int(info["input_size"]),
        embed_dim=int(info["embed_dim"]),
        images_seen=images_seen,
        metrics=metrics,
    )


def embeddings_write(backbone: Backbone, keys: Sequence[str], vectors: np.ndarray) -> int:
    """Store (or replace) the embeddings of these images (keys: image ids as strings) from
    ``backbone``; images deleted meanwhile are skipped. Returns how many were written."""
    return _embeddings_upsert(backbone.project_id, keys, vectors, backbone=backbone)


def embeddings_write_model(version: ModelVersion, keys: Sequence[str], vectors: np.ndarray) -> int:
    """Store (or replace) these images' penultimate features from model ``version``: the
    vectors similarity search uses in a project without a backbone."""
    return _embeddings_upsert(version.project_id, keys, vectors, model_version=version)


def _embeddings_upsert(
    project_id: int,
    keys: Sequence[str],
    vectors: np.ndarray,
    *,
    backbone: Backbone | None = None,
    model_version: ModelVersion | None = None,
) -> int:
    if len(keys) != len(vectors):
        raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
    ids = [int(k) for k in keys]
    alive = set(
        Image.objects.filter(project_id=project_id, pk__in=ids).values_list("pk", flat=True)
    )
    data = np.ascontiguousarray(vectors, dtype="<f2")
    rows = [
        ImageEmbedding(
            image_id=i, backbone=backbone, model_version=model_version, vector=data[n].tobytes()
        )
        for n, i in enumerate(ids)
        if i in alive
    ]
    with transaction.atomic():
        for start in range(0, len(rows), EMBED_BATCH):
            ImageEmbedding.objects.bulk_create(
                rows[start : start + EMBED_BATCH],
                update_conflicts=True,
                unique_fields=["image"],
                update_fields=["backbone", "model_version", "vector"],
            )
    return len(rows)


def embeddings_read(backbone: Backbone, image_ids: Iterable[int]) -> dict[int, np.ndarray]:
    """Image id -> float16 vector, for the images that have one from ``backbone``."""
    found: dict[int, np.ndarray] = {}
    ids = list(image_ids)
    for start in range(0, len(ids), 10_000):
        rows = ImageEmbedding.objects.filter(
            backbone=backbone, image_id__in=ids[start : start + 10_000]
        ).values_list("image_id", "vector")
        for image_id, vector in rows:
            found[image_id] = np.frombuffer(bytes(vector), dtype="<f2")
    return found


def embeddings_count(backbone: Backbone) -> int:
    return ImageEmbedding.objects.filter(backbone=backbone).count()
