"""The embedding map: a 2-D projection of a project's embeddings (the vectors similarity search
uses, ``learning/similar.py``) for the dashboard, computed by the worker when they change and
served with each point's label, prediction and uncertainty as they are at request time.

PCA, not UMAP or t-SNE: it takes milliseconds at 50,000 points (t-SNE takes minutes on two
cores and UMAP is not a dependency), it is deterministic, and a refresh after a few more images
moves the map only as much as the data moved, so an admin's bearings survive a refresh. The
price is that clusters which differ in many directions may overlap in two. A project of more
than ``MAP_POINTS`` images is sampled (uniformly, seeded by the project: the same sample until
the vectors change).

    .venv/bin/python -m pytest tests/labeling/learning/test_embedding_map.py -q
"""

from __future__ import annotations

import logging

import numpy as np

from labeling.learning.models import EmbeddingMap
from labeling.learning.similar import READ_BATCH, Source, similar_source, vector_batches
from labeling.projects.models import Project

logger = logging.getLogger(__name__)

# Points on the map at most: a canvas draws 50,000 in a few milliseconds, and the JSON is ~2 MB.
MAP_POINTS = 50_000


def embedding_map_build(*, project: Project) -> EmbeddingMap | None:
    """The project's map, recomputed when its vectors' source or number changed (the worker,
    after a run). None while the project has no vectors."""
    source = similar_source(project)
    if source is None:
        EmbeddingMap.objects.filter(project=project).delete()
        return None
    total = source.rows().count()
    existing = EmbeddingMap.objects.filter(project=project).first()
    if existing is not None and source.matches(existing) and existing.total == total:
        return existing
    ids, vectors = _sample(project, source)
    xy, explained = project_2d(vectors)
    built, _ = EmbeddingMap.objects.update_or_create(
        project=project,
        defaults={
            "backbone": source.backbone,
            "model_version": source.model_version,
            "method": "pca",
            "total": total,
            "points": {
                "id": ids.tolist(),
                "x": np.round(xy[:, 0], 4).tolist(),
                "y": np.round(xy[:, 1], 4).tolist(),
            },
            "explained": [round(float(e), 4) for e in explained],
        },
    )
    logger.info("embedding map of %s: %d of %d vectors", project.slug, len(ids), total)
    return built


def _sample(project: Project, source: Source) -> tuple[np.ndarray, np.ndarray]:
    """(image ids, float32 vectors) of at most ``MAP_POINTS`` of the source's vectors."""
    ids = np.array(source.rows().values_list("image_id", flat=True), dtype=np.int64)
    if len(ids) > MAP_POINTS:
        rng = np.random.default_rng(project.pk)
        ids = np.sort(rng.choice(ids, MAP_POINTS, replace=False))
    kept_ids, kept = [], []
    for start in range(0, len(ids), READ_BATCH):
        chunk = source.rows().filter(image_id__in=ids[start : start + READ_BATCH].tolist())
        for batch_ids, batch in vector_batches(chunk):
            kept_ids.append(batch_ids)
            kept.append(batch.astype(np.float32))
    if not kept:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    return np.concatenate(kept_ids), np.concatenate(kept)


def project_2d(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) coordinates in 0..1 (one scale for both axes, so distances keep their
    proportions) and the share of the variance each axis explains: PCA of the unit-length
    vectors (the cosine geometry similarity search uses)."""
    if len(vectors) == 0:
        return np.zeros((0, 2), np.float32), np.zeros(2)
    x = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    x = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    axes = vt[:2]
    # An axis's sign is arbitrary: fix it (largest loading positive) so refreshes don't flip.
    axes = axes * np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    xy = x @ axes.T
    if xy.shape[1] < 2:  # one-dimensional vectors
        xy = np.pad(xy, ((0, 0), (0, 2 - xy.shape[1])))
    low, span = xy.min(axis=0), np.ptp(xy, axis=0).max()
    xy = (xy - low) / (span if span > 0 else 1.0)
    variance = s**2
    explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
    return xy.astype(np.float32), np.pad(explained, (0, 2 - len(explained)))
