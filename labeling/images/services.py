"""Writes for images: ingest from uploads, archives and folders.

``images_ingest`` is used by ``POST /api/projects/{id}/images/`` and by
``python manage.py import_images PATH --project SLUG``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import DatabaseError, IntegrityError, transaction

from labeling.core import events
from labeling.core.storage import (
    storage_delete,
    storage_exists,
    storage_key,
    storage_put,
    store_lock,
)
from labeling.images.manifest import manifest_is_gold, manifest_lookup
from labeling.images.models import Image, ImageStatus
from labeling.images.sources import Limits, Source, SourceError
from labeling.images.validation import Rejected, ValidImage, image_upright, validate_image
from labeling.projects.labels import label_resolve, project_labels_for_write
from labeling.projects.models import Project

logger = logging.getLogger(__name__)

# Rows per INSERT: big enough that 5,000 images cost ~40 queries, small enough that one
# batch's bytes (256 x 20 MB worst case is avoided: see _PENDING_BYTES) stay modest.
BATCH_SIZE = 256
# Concurrent writes to the image store per batch.
_WRITERS = 8
# Flush early when a batch holds this many bytes of image data in memory.
_PENDING_BYTES = 64 * 1024 * 1024


@dataclass
class FileResult:
    name: str
    status: str  # created | duplicate | rejected
    reason: str | None = None
    image_id: int | None = None
    sha256: str | None = None
    label: str | None = None
    gold: bool = False  # the label is a gold label: the image is a gold question

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "image": self.image_id,
            "sha256": self.sha256,
            "label": self.label,
            "gold": self.gold,
        }


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def summary(self) -> dict[str, int]:
        return {s: self.count(s) for s in ("created", "duplicate", "rejected")}


@dataclass
class _Pending:
    result: FileResult
    data: bytes
    info: ValidImage
    label: str | None


def ingest_limits() -> Limits:
    return Limits(
        max_bytes=settings.LABELLOOP_MAX_IMAGE_BYTES,
        max_pixels=settings.LABELLOOP_MAX_IMAGE_PIXELS,
        max_archive_bytes=settings.LABELLOOP_MAX_ARCHIVE_BYTES,
        max_archive_members=settings.LABELLOOP_MAX_ARCHIVE_MEMBERS,
        max_compression_ratio=settings.LABELLOOP_MAX_COMPRESSION_RATIO,
    )


def images_ingest(
    *,
    project: Project,
    user: AbstractBaseUser,
    sources: Iterable[Source | SourceError],
    manifest: dict[str, str] | None = None,
    labels_from_folders: bool = False,
    progress: Callable[[FileResult], None] | None = None,
) -> IngestReport:
    """Validate, deduplicate and store every source; answer each with a ``FileResult``.

    Good files are stored even when others in the same call are rejected. A batch's files are
    written before its rows; if the rows cannot be written, the files this batch created are
    removed again, so there is never a row without its file nor an orphan file.
    """
    limits = ingest_limits()
    classes = set(project.labels)
    report = IngestReport()
    seen: dict[str, FileResult] = {}  # sha256 -> first result in this call
    batch: list[_Pending] = []
    batch_bytes = 0

    def emit(result: FileResult) -> None:
        report.results.append(result)
        if progress is not None:
            progress(result)

    for source in sources:
        checked = _check(source, project, classes, manifest, labels_from_folders, limits)
        if isinstance(checked, FileResult):  # rejected
            emit(checked)
            continue
        result, data, info, label = checked
        sha = hashlib.sha256(data).hexdigest()
        result.sha256, result.label = sha, label
        if sha in seen:
            result.status = "duplicate"
            result.reason = f"same content as {seen[sha].name}"
            result.image_id = seen[sha].image_id
            emit(result)
            continue
        seen[sha] = result
        batch.append(_Pending(result, data, info, label))
        batch_bytes += len(data)
        if len(batch) >= BATCH_SIZE or batch_bytes >= _PENDING_BYTES:
            for done in _flush(project=project, user=user, batch=batch):
                emit(done)
            batch, batch_bytes = [], 0
    for done in _flush(project=project, user=user, batch=batch):
        emit(done)
    for result in report.results:
        # A copy within this call points at the image its first occurrence created.
        if result.status == "duplicate" and result.image_id is None and result.sha256:
            result.image_id = seen[result.sha256].image_id
    logger.info("ingest into %s: %s", project.slug, report.summary)
    created = [r for r in report.results if r.status == "created"]
    if created:
        # Once, after the last batch: the learning loop queues what the upload calls for (a
        # retrain when its labels reach retrain_every, else an ordering of the new images).
        events.images_added.send(
            sender=Image,
            project=project,
            image_ids=[r.image_id for r in created],
            labeled=sum(r.label is not None for r in created),
        )
    return report


def _check(
    source: Source | SourceError,
    project: Project,
    classes: set[str],
    manifest: dict[str, str] | None,
    labels_from_folders: bool,
    limits: Limits,
) -> FileResult | tuple[FileResult, bytes, ValidImage, str | None]:
    """A rejected source's answer, or (its result so far, bytes, image info, label)."""
    if isinstance(source, SourceError):
        return FileResult(source.name, "rejected", source.reason)
    result = FileResult(source.name, "rejected")
    label = _label_for(source, manifest, labels_from_folders)
    result.gold = bool(manifest) and manifest_is_gold(manifest, source.name)
    if label is not None:  # a class's old name (renamed since) means the class
        label = label_resolve(label, project.labels, project.label_renames) or label
    if label is not None and label not in classes:
        result.reason = (
            f"label {label!r} is not one of the project's classes "
            f"({', '.join(project.labels[:20])}{', ...' if len(classes) > 20 else ''})"
        )
        return result
    try:
        data = source.read()
        info = validate_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
        data, info = image_upright(data, info)  # stored as people see it
    except Rejected as exc:
        result.reason = exc.reason
        return result
    except OSError as exc:
        result.reason = f"could not read the file ({exc})"
        return result
    return result, data, info, label


def _label_for(
    source: Source, manifest: dict[str, str] | None, labels_from_folders: bool
) -> str | None:
    if manifest:
        label = manifest_lookup(manifest, source.name)
        if label is not None:
            return label
    if labels_from_folders:
        return source.folder
    return None


def _flush(*, project: Project, user: AbstractBaseUser, batch: list[_Pending]) -> list[FileResult]:
    if not batch:
        return []
    existing = dict(
        Image.objects.filter(
            project=project, sha256__in=[p.result.sha256 for p in batch]
        ).values_list("sha256", "id")
    )
    fresh: list[_Pending] = []
    for pending in batch:
        image_id = existing.get(pending.result.sha256)
        if image_id is not None:
            pending.result.status = "duplicate"
            pending.result.reason = "already in this project"
            pending.result.image_id = image_id
        else:
            fresh.append(pending)
    if fresh:
        _store(project=project, user=user, fresh=fresh)
    return [p.result for p in batch]


def _store(*, project: Project, user: AbstractBaseUser, fresh: list[_Pending]) -> None:
    created_keys: list[str] = []
    try:
        keys = [storage_key(sha256=p.result.sha256, image_format=p.info.format) for p in fresh]
        _write_files(keys=keys, fresh=fresh, created_keys=created_keys)
        with transaction.atomic():
            store_lock(shared=True)  # no sweep deletes files until these rows are committed
            _restore_reused(keys=keys, fresh=fresh, created_keys=created_keys)
            # A class renamed since this import read the project: store its new name (none,
            # should the class have been removed meanwhile: the image arrives unlabeled).
            if any(p.label is not None for p in fresh):
                labels, renames = project_labels_for_write(project)
                for p in fresh:
                    if p.label is not None:
                        p.label = p.result.label = label_resolve(p.label, labels, renames)
                        p.result.gold &= p.label is not None
            rows = [
                Image(
                    project=project,
                    sha256=p.result.sha256,
                    storage_key=key,
                    width=p.info.width,
                    height=p.info.height,
                    mode=p.info.mode,
                    format=p.info.format,
                    original_name=p.result.name[-500:],
                    size_bytes=len(p.data),
                    **_label_fields(p.label),
                    gold_label=p.label if p.result.gold else None,
                )
                for p, key in zip(fresh, keys, strict=True)
            ]
            Image.objects.bulk_create(rows)
            labeled = [row for row in rows if row.consensus_label is not None]
            if labeled:
                # Imported labels are labels too: recorded as the importer's annotations and
                # announced (image.labeled), with this batch's rows.
                events.images_labeled.send(
                    sender=Image, project=project, images=labeled, source="import", user=user
                )
    except StoreError as exc:
        # The image store refused (disk full, read-only, bucket gone): nothing of this batch
        # is kept, and each file says why.
        _remove_unreferenced(created_keys)
        for pending in fresh:
            pending.result.reason = f"could not write to the image store ({exc.__cause__})"
        return
    except IntegrityError:
        # Another import stored some of the same images between our check and our insert.
        # Undo this batch's files that nobody references, then retry the rows one by one.
        _remove_unreferenced(created_keys)
        for pending in fresh:
            _flush(project=project, user=user, batch=[pending])
        return
    except BaseException:
        _remove_unreferenced(created_keys)
        raise
    for pending, row in zip(fresh, rows, strict=True):
        pending.result.status = "created"
        pending.result.image_id = row.id


class StoreError(Exception):
    """Writing a batch to the image store failed; ``__cause__`` says how."""


def _write_files(*, keys: list[str], fresh: list[_Pending], created_keys: list[str]) -> None:
    """Write a batch's files in parallel (stores are latency-bound, not CPU-bound).

    Every write is waited for, so ``created_keys`` lists all the files this batch created
    even when some writes fail; the caller removes them again on failure.
    """
    with ThreadPoolExecutor(max_workers=_WRITERS) as pool:
        futures = [
            pool.submit(storage_put, key=k, data=p.data) for k, p in zip(keys, fresh, strict=True)
        ]
    failure: BaseException | None = None
    for key, future in zip(keys, futures, strict=True):
        try:
            if future.result():
                created_keys.append(key)
        except OSError as exc:
            failure = failure or exc
    if failure is not None:
        raise StoreError() from failure


def _restore_reused(*, keys: list[str], fresh: list[_Pending], created_keys: list[str]) -> None:
    """Files this batch found already stored may have been swept since (their old rows were
    deleted): under the store lock, write back any that are gone, so no row is committed
    without its file."""
    created = set(created_keys)
    for key, pending in zip(keys, fresh, strict=True):
        if key in created or storage_exists(key=key):
            continue
        try:
            if storage_put(key=key, data=pending.data):
                created_keys.append(key)
        except OSError as exc:
            raise StoreError() from exc


def _label_fields(label: str | None) -> dict[str, object]:
    """Imported labels are ground truth: the image is labeled with a unanimous consensus."""
    if label is None:
        return {}
    return {
        "status": ImageStatus.LABELED,
        "consensus_label": label,
        "agreement": 1.0,
        "annotation_count": 1,
    }


def _remove_unreferenced(keys: list[str]) -> None:
    if not keys:
        return
    try:
        with transaction.atomic():
            store_lock(shared=False)  # no upload may start referencing them meanwhile
            referenced = set(
                Image.objects.filter(storage_key__in=keys).values_list("storage_key", flat=True)
            )
            for key in keys:
                if key not in referenced:
                    storage_delete(key=key)
        return
    except DatabaseError:
        pass
    # The database is gone: nothing of ours was committed, and these keys did not exist
    # before this batch, so removing them all is safe.
    for key in keys:
        storage_delete(key=key)
