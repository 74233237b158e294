"""Similar images ("more like this"): an image's nearest neighbours by embedding.

The vectors are the project's ``ImageEmbedding`` rows of one source: its newest backbone's,
or, in a project without a backbone, the active model's penultimate features (stored by the
model's scoring pass, ``jobs/scoring.py``). Distances are cosine distances (0 = same
direction, 2 = opposite).

Where PostgreSQL has pgvector (the embedded server ships it), the worker keeps each project's
vectors in a table of its own, ``similar_p<project id>`` (``image_id``, ``vec halfvec(D)``),
with an HNSW index, and the web process asks it for the k nearest (``similar_neighbours``).
After every run the worker refreshes it (``similar_index_refresh``): a new source (a new
backbone, a new model) rebuilds it into a fresh table swapped in by one transaction, so
queries never see a half-built index; vectors added since (images embedded by a round) are
inserted into it, and rows of deleted images removed. Without pgvector, or before the worker
first built it, a project of up to ``EXACT_MAX`` vectors is searched exactly, in numpy.

No torch here: both sides import it.

    .venv/bin/python -m pytest tests/labeling/learning/test_similar.py -q
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import ProgrammingError, connection, transaction
from django.db.models import QuerySet

from labeling.core.errors import Conflict
from labeling.learning.backbones import backbone_newest
from labeling.learning.models import Backbone, ImageEmbedding, ModelVersion, SimilarIndex
from labeling.projects.models import Project

logger = logging.getLogger(__name__)

# Vectors searched exactly, per request, where no index is built: reading them from the
# database costs ~16 ms per 1,000 (docs/benchmarks.md), so about 0.3 s at this size.
EXACT_MAX = 20_000
# HNSW graph: pgvector's defaults (neighbours per node; candidates while building).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 64
# Candidates an HNSW search keeps (pgvector's default is 40), at least, and at least twice the
# k asked for. At 1M clustered vectors 40 found 91% of the true 12 nearest and 100 found 99%,
# in the same time on this machine (docs/benchmarks.md, "Similar images").
EF_SEARCH_MIN = 100
# Vectors read and copied per batch while building: ~2.6 MB of float16 at 128 dimensions.
READ_BATCH = 10_000
_EMBEDDING = ImageEmbedding._meta.db_table
# Advisory-lock namespace of index refreshes (one refresh of a project at a time).
LOCK_NAMESPACE = 0x51D1


@dataclass(frozen=True)
class Source:
    """Where a project's vectors come from now: one of the two is set."""

    backbone: Backbone | None = None
    model_version: ModelVersion | None = None

    def rows(self) -> QuerySet[ImageEmbedding]:
        if self.backbone is not None:
            return ImageEmbedding.objects.filter(backbone=self.backbone)
        return ImageEmbedding.objects.filter(model_version=self.model_version)

    def describe(self) -> dict:
        if self.backbone is not None:
            return {"kind": "backbone", "number": self.backbone.number}
        return {"kind": "model", "number": self.model_version.number}

    def matches(self, index: SimilarIndex) -> bool:
        return index.backbone_id == getattr(
            self.backbone, "pk", None
        ) and index.model_version_id == getattr(self.model_version, "pk", None)


def similar_source(project: Project) -> Source | None:
    """The project's newest backbone if it has embedded anything, else its active model if
    its scoring stored features; None while the project has no vectors at all."""
    backbone = backbone_newest(project)
    if backbone is not None and ImageEmbedding.objects.filter(backbone=backbone).exists():
        return Source(backbone=backbone)
    version = ModelVersion.objects.filter(project=project, is_active=True).first()
    if version is not None and ImageEmbedding.objects.filter(model_version=version).exists():
        return Source(model_version=version)
    return None


def pgvector_loaded() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'")
        return cursor.fetchone() is not None


def table_name(project_id: int) -> str:
    return f"similar_p{int(project_id)}"


def _table_exists(name: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [name])
        return cursor.fetchone()[0] is not None


# --- the worker's side: building and refreshing -------------------------------------------


def similar_index_refresh(*, project: Project) -> SimilarIndex | None:
    """Bring the project's index in line with its vectors (the worker, after a run). Returns
    the index's row, or None where there is nothing to index or no pgvector."""
    if not pgvector_loaded():
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [LOCK_NAMESPACE, project.pk])
    try:
        return _refresh(project)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [LOCK_NAMESPACE, project.pk])


def similar_index_drop(*, project_id: int) -> None:
    """Drop the project's index table and its row (a deleted project, or one without vectors)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table_name(project_id)}")
        cursor.execute(f"DROP TABLE IF EXISTS {table_name(project_id)}_new")
        SimilarIndex.objects.filter(project_id=project_id).delete()


def _refresh(project: Project) -> SimilarIndex | None:
    source = similar_source(project)
    table = table_name(project.pk)
    index = SimilarIndex.objects.filter(project=project).first()
    if source is None:
        similar_index_drop(project_id=project.pk)
        return None
    started = time.perf_counter()
    if index is not None and source.matches(index) and _table_exists(table):
        added, removed = _top_up(table, source, index.dim)
        if not added and not removed:
            return index
        index.size = index.size + added - removed
        index.build_seconds = round(time.perf_counter() - started, 3)
        index.save(update_fields=["size", "build_seconds", "built_at"])
        logger.info("similarity index of %s: +%d -%d vectors", project.slug, added, removed)
        return index
    dim, size = _build(table, source)
    index, _ = SimilarIndex.objects.update_or_create(
        project=project,
        defaults={
            "backbone": source.backbone,
            "model_version": source.model_version,
            "dim": dim,
            "size": size,
            "build_seconds": round(time.perf_counter() - started, 3),
        },
    )
    logger.info(
        "similarity index of %s built: %d vectors in %.1f s",
        project.slug,
        size,
        index.build_seconds,
    )
    return index


def _build(table: str, source: Source) -> tuple[int, int]:
    """Every vector of ``source`` into a new table with its HNSW index, then swapped in for
    the old one in one transaction. Returns (dimensions, vectors)."""
    new = f"{table}_new"
    dim = _dim(source)
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {new}")
        cursor.execute(f"CREATE TABLE {new} (image_id bigint PRIMARY KEY, vec halfvec({dim}))")
    size = 0
    for ids, vectors in vector_batches(source.rows()):
        size += _copy(new, ids, vectors)
    with connection.cursor() as cursor:
        # The graph is built in memory while it fits, much faster than on disk.
        cursor.execute(
            "SELECT set_config('maintenance_work_mem', %s, false)",
            [f"{settings.LABELLOOP_SIMILAR_BUILD_MEMORY_MB}MB"],
        )
        cursor.execute(
            f"CREATE INDEX {new}_hnsw ON {new} USING hnsw (vec halfvec_cosine_ops) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})"
        )
        cursor.execute("RESET maintenance_work_mem")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(f"ALTER TABLE {new} RENAME TO {table}")
        cursor.execute(f"ALTER INDEX {new}_pkey RENAME TO {table}_pkey")
        cursor.execute(f"ALTER INDEX {new}_hnsw RENAME TO {table}_hnsw")
    return dim, size


def _top_up(table: str, source: Source, dim: int) -> tuple[int, int]:
    """Insert the source's vectors the index lacks; remove the rows of deleted images.
    Returns (added, removed)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {table} s WHERE NOT EXISTS "
            "(SELECT 1 FROM images_image i WHERE i.id = s.image_id)"
        )
        removed = cursor.rowcount
    # An anti-join in the database: only the missing vectors travel.
    missing = source.rows().extra(
        where=[f"NOT EXISTS (SELECT 1 FROM {table} s WHERE s.image_id = {_EMBEDDING}.image_id)"]
    )
    added = 0
    for ids, vectors in vector_batches(missing):
        if vectors.shape[1] == dim:
            added += _copy(table, ids, vectors)
    return added, removed


def _dim(source: Source) -> int:
    if source.backbone is not None:
        return int(source.backbone.embed_dim)
    vector = source.rows().values_list("vector", flat=True).first()
    return len(bytes(vector)) // 2


def vector_batches(rows: QuerySet[ImageEmbedding]):
    """(image ids, (n, D) float16 vectors) in batches of ``READ_BATCH``, by image id."""
    ids: list[int] = []
    blobs: list[bytes] = []
    for image_id, vector in (
        rows.order_by("image_id").values_list("image_id", "vector").iterator(chunk_size=READ_BATCH)
    ):
        ids.append(image_id)
        blobs.append(bytes(vector))
        if len(ids) == READ_BATCH:
            yield decode_vectors(ids, blobs)
            ids, blobs = [], []
    if ids:
        yield decode_vectors(ids, blobs)


def decode_vectors(ids: list[int], blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    vectors = np.frombuffer(b"".join(blobs), dtype="<f2").reshape(len(ids), -1)
    return np.array(ids, dtype=np.int64), vectors


# PostgreSQL's binary COPY framing: signature, flags, header extension length; the trailer.
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
_COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)


def _copy(table: str, ids: np.ndarray, vectors: np.ndarray) -> int:
    """COPY (image id, halfvec) rows in PostgreSQL's binary format, built by numpy in one go
    (a halfvec on the wire: int16 dimensions, int16 unused, then big-endian float16s).
    Vectors with no direction (zeros: an image that could not be read) are left out."""
    finite = np.isfinite(vectors).all(axis=1)
    keep = finite & (np.abs(vectors.astype(np.float32)).sum(axis=1) > 0)
    ids, vectors = ids[keep], vectors[keep]
    if not len(ids):
        return 0
    dim = vectors.shape[1]
    row = np.dtype(
        [
            ("fields", ">i2"),
            ("id_len", ">i4"),
            ("id", ">i8"),
            ("vec_len", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("vec", ">f2", (dim,)),
        ]
    )
    rows = np.zeros(len(ids), dtype=row)
    rows["fields"], rows["id_len"], rows["id"] = 2, 8, ids
    rows["vec_len"], rows["dim"], rows["vec"] = 4 + 2 * dim, dim, vectors
    sql = f"COPY {table} (image_id, vec) FROM STDIN (FORMAT BINARY)"
    with connection.cursor() as cursor, cursor.cursor.copy(sql) as copy:
        copy.write(_COPY_HEADER + rows.tobytes() + _COPY_TRAILER)
    return len(ids)


# --- the web side: queries -----------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """An image's nearest neighbours: (image id, cosine distance), nearest first."""

    neighbours: list[tuple[int, float]]
    method: str  # "hnsw" (pgvector's index) or "exact" (numpy, no index yet)
    source: dict


def similar_neighbours(*, project: Project, image_id: int, k: int) -> Found:
    """The ``k`` images of the project nearest to ``image_id`` (itself left out)."""
    index = SimilarIndex.objects.filter(project=project).select_related("backbone", "model_version")
    index = index.first()
    if index is not None:
        try:
            return _from_index(index, image_id, k)
        except ProgrammingError:  # its table is gone (a restore without it): search exactly
            logger.warning("similarity index of project %d has no table", project.pk)
    return _exact(project, image_id, k)


def _from_index(index: SimilarIndex, image_id: int, k: int) -> Found:
    table = table_name(index.project_id)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, true)", [str(max(EF_SEARCH_MIN, 2 * k))]
        )
        cursor.execute(f"SELECT vec::text FROM {table} WHERE image_id = %s", [image_id])
        row = cursor.fetchone()
        if row is None:
            raise _no_vector()
        cursor.execute(
            f"SELECT image_id, vec <=> %s::halfvec FROM {table} "
            "ORDER BY vec <=> %s::halfvec LIMIT %s",
            [row[0], row[0], k + 1],
        )
        found = [(i, float(d)) for i, d in cursor.fetchall() if i != image_id][:k]
    source = Source(backbone=index.backbone, model_version=index.model_version)
    described = source.describe() if index.backbone or index.model_version else {}
    return Found(neighbours=found, method="hnsw", source=described)


def _exact(project: Project, image_id: int, k: int) -> Found:
    source = similar_source(project)
    if source is None:
        raise Conflict(
            "the project has no embeddings yet: they come with a backbone (pretrained or "
            "imported) or with the first model a round trains",
            code="no_embeddings",
        )
    rows = source.rows()
    if rows.count() > EXACT_MAX:
        raise Conflict(
            "the project's similarity index is being built; try again in a few minutes",
            code="index_building",
        )
    ids, vectors = [], []
    for batch_ids, batch in vector_batches(rows):
        ids.append(batch_ids)
        vectors.append(batch.astype(np.float32))
    ids_all, x = np.concatenate(ids), np.concatenate(vectors)
    where = np.flatnonzero(ids_all == image_id)
    if not len(where):
        raise _no_vector()
    norms = np.linalg.norm(x, axis=1)
    norms[norms == 0] = np.inf  # no direction: never near anything
    x /= norms[:, None]
    distance = 1.0 - x @ x[where[0]]
    distance[where[0]] = np.inf
    nearest = np.argsort(distance, kind="stable")[:k]
    found = [(int(ids_all[i]), float(distance[i])) for i in nearest if np.isfinite(distance[i])]
    return Found(neighbours=found, method="exact", source=source.describe())


def _no_vector() -> Conflict:
    return Conflict(
        "this image has no embedding yet (uploaded since the last one was computed); the "
        "next round embeds it",
        code="no_embedding",
    )
