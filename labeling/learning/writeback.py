"""What the worker reads from and writes to the product's stores: local copies of image-store
objects for Ray, the array cache's folder, and the bulk write-back of scores (COPY into a
temporary table, then one UPDATE of the queue and one upsert of the per-image scores)."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import connection

from labeling.core.storage import file_sha256, storage_local_path, storage_open
from labeling.projects.labels import follow_renames, project_labels_for_write
from training.contracts import ImageRef

logger = logging.getLogger(__name__)

# Parallel downloads from a remote image store: S3 answers each request in 10-50 ms whatever
# else is in flight. django-storages shares one boto3 client among threads (it caches its
# bucket object), and a boto3 client keeps 10 connections: more threads would only queue.
FETCH_THREADS = 10


def copy_scores(project, version, result, pool: set[str]) -> None:
    """A scoring of the whole project: the pool's images get priorities by their rank in the
    result's order (higher = label sooner). Runs inside the caller's transaction."""
    order = sorted(
        (int(p), key) for p, key in zip(result.priority, result.keys, strict=True) if key in pool
    )
    write_scores(
        project, version, result, {key: len(order) - i for i, (_, key) in enumerate(order)}
    )


def write_scores(project, version, result, priority: dict[str, float]) -> None:
    """COPY the scores into a temporary table, then one UPDATE of the queue (the images in
    `priority` that are still waiting get theirs) and one upsert of the per-image scores.
    Runs inside the caller's transaction."""
    # Predicted labels by the classes' names now, under the share lock a rename waits for.
    labels, renames = project_labels_for_write(project)
    classes = follow_renames(list(result.classes), renames[renames_seen(version) :])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE incoming_scores (image_id bigint PRIMARY KEY, priority float8, "
            "predicted int, confidence float8, score float8, probabilities float8[]) "
            "ON COMMIT DROP"
        )
        with cursor.cursor.copy("COPY incoming_scores FROM STDIN") as copy:
            for i, key in enumerate(result.keys):
                probs = "{" + ",".join(f"{p:.6g}" for p in result.probabilities[i]) + "}"
                copy.write_row(
                    (
                        int(key),
                        float(priority.get(key, 0.0)),
                        int(result.predicted[i]),
                        float(result.confidence[i]),
                        float(result.scores[i]),
                        probs,
                    )
                )
        cursor.execute(
            """
            UPDATE images_image i
            SET priority = CASE WHEN i.status IN ('unlabeled', 'partial')
                                THEN s.priority ELSE i.priority END,
                predicted_label = (%(labels)s::text[])[s.predicted + 1],
                confidence = s.confidence,
                uncertainty = 1 - s.confidence,
                updated_at = now()
            FROM incoming_scores s
            WHERE i.id = s.image_id AND i.project_id = %(project)s
            """,
            {"labels": model_labels(classes, labels), "project": project.id},
        )
        cursor.execute(
            """
            INSERT INTO learning_imagescore
                (image_id, model_version_id, predicted, confidence, probabilities, score)
            SELECT image_id, %(version)s, predicted, confidence, probabilities, score
            FROM incoming_scores
            ON CONFLICT (image_id) DO UPDATE SET
                model_version_id = EXCLUDED.model_version_id,
                predicted = EXCLUDED.predicted,
                confidence = EXCLUDED.confidence,
                probabilities = EXCLUDED.probabilities,
                score = EXCLUDED.score
            """,
            {"version": version.pk},
        )


def renames_seen(version) -> int:
    """How many of its project's class renames a model version's names already include: the
    later ones (``project.label_renames[n:]``) rename its classes. Versions registered before
    renames existed had seen none."""
    return int(version.config.get("renames_seen", 0))


def model_labels(classes: Sequence[str], labels: Sequence[str]) -> list[str | None]:
    """A model's class names, by the index it predicts, as the project's labels: a class the
    project no longer has is None (no suggestion rather than a label nobody can give).

    A model keeps the classes (and their order) it was trained on. The project's may have
    changed since: a class added, the list reordered, an unused class removed.
    """
    current = set(labels)
    return [name if name in current else None for name in classes]


def write_cold_start(project, head: list[int]) -> None:
    """Queue priorities before any model: head[0] first, then the rest of the head, then every
    other unlabeled image at 0 (ties break on random_key: random order). Runs inside the
    caller's transaction."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE images_image
            SET priority = 0, updated_at = now()
            WHERE project_id = %(project)s AND status IN ('unlabeled', 'partial')
              AND priority <> 0 AND NOT (id = ANY(%(head)s::bigint[]))
            """,
            {"project": project.id, "head": head},
        )
        cursor.execute(
            """
            UPDATE images_image i
            SET priority = h.priority, updated_at = now()
            FROM unnest(%(head)s::bigint[], %(priority)s::float8[]) AS h(image_id, priority)
            WHERE i.id = h.image_id AND i.project_id = %(project)s
              AND i.status IN ('unlabeled', 'partial')
            """,
            {
                "project": project.id,
                "head": head,
                "priority": [float(len(head) - i) for i in range(len(head))],
            },
        )


def cache_dir() -> Path:
    path = Path(settings.DATA_DIR) / "cache" / "arrays"
    path.mkdir(parents=True, exist_ok=True)
    return path


def local_path(key: str) -> str:
    """A filesystem path to an object of the image store (downloaded once for remote stores)."""
    return local_paths([key])[0]


def local_paths(keys: Sequence[str]) -> list[str]:
    """Filesystem paths to objects of the image store, for the Ray actors to read.

    A local store's own paths; for a remote one (S3) copies under ``cache/objects/`` in the
    data dir, shared with the Ray nodes. What is not copied yet is downloaded in parallel
    (``FETCH_THREADS``): a bucket answers each request in tens of milliseconds, so one at a
    time, a first round over a large pool would spend hours waiting. An object that is not in
    the store gets a path to nothing, which the engine reports as a failed item (as it does a
    file missing from a local store); any other failure of the store fails the call.
    """
    if not keys:
        return []
    if storage_local_path(key=keys[0]) is not None:
        return [storage_local_path(key=key) for key in keys]
    root = Path(settings.DATA_DIR) / "cache" / "objects"
    targets = [root / key for key in keys]
    missing = [(k, t) for k, t in zip(keys, targets, strict=True) if not t.exists()]
    if missing:
        started = last = time.monotonic()
        with ThreadPoolExecutor(max_workers=FETCH_THREADS) as pool:
            for done, _ in enumerate(pool.map(lambda pair: _download(*pair), missing), start=1):
                if time.monotonic() - last >= 10 or done == len(missing):
                    last = time.monotonic()
                    logger.info(
                        "copied %d of %d objects from the image store (%.0f s)",
                        done, len(missing), last - started,
                    )  # fmt: skip
    return [str(target) for target in targets]


def image_refs(rows: Sequence[tuple[int, str, str]]) -> list:
    """``ImageRef``s for (image id, sha256, storage key) rows, with ``local_paths``."""
    paths = local_paths([key for _, _, key in rows])
    return [
        ImageRef(key=str(image_id), sha256=sha, path=path)
        for (image_id, sha, _), path in zip(rows, paths, strict=True)
    ]


def _download(key: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        src = storage_open(key=key)
    except FileNotFoundError:
        logger.warning("%s is not in the image store; the run will report it as failed", key)
        return
    with src, tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        try:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                tmp.write(chunk)
        except BaseException:
            tmp.close()
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, target)  # never a partial copy under the real name


def local_checkpoint(key: str) -> str:
    return local_path(key)


def checkpoint_store(*, project, run, path: str) -> str:
    """Store a run's checkpoint file in the image store; returns its key.

    The key names the content (``models/<slug>/run-<id>-<sha256 prefix>.pt``) because local
    copies of a remote store's objects (``local_path``) are kept by key: a key that named
    new weights later would be served from a stale copy. Run ids repeat after a database
    restore, and a run re-executed after a crash trains different weights. Storing the same
    weights again rewrites their object (a crash may have left a partial file under it).
    """
    key = f"models/{project.slug}/run-{run.pk}-{file_sha256(path)[:16]}.pt"
    if default_storage.exists(key):
        default_storage.delete(key)
    with open(path, "rb") as handle:
        return default_storage.save(key, File(handle))


def json_safe(value):
    """Metrics from numpy land: make them plain JSON."""
    return json.loads(
        json.dumps(value, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    )
