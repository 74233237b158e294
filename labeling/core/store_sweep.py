"""Delete image-store files that no row references any more: ``manage.py sweep_store``.

Deleting a project removes its rows in a few statements but leaves its files: the store is
content-addressed, so a file may still serve another project, and deciding that needs the
references of every project. This sweep decides it in constant memory: it walks the store's
keys and the referenced keys (the references the apps registered with
``store_reference_register``: images, model checkpoints), both in byte order, and merges
the two streams. A file is deleted only when no row references it and it is older than
``min_age`` (an upload writes its files before its rows, and a run its checkpoint before its
model version). Deleting happens in batches under the store's exclusive lock
(``labeling/core/storage.py``), after re-checking the rows written since the walk began,
so an upload that reuses a file meanwhile either keeps it or writes it back.

Only what LabelLoop writes (the registered prefixes: ``images/``, ``models/``) is looked at;
nothing else in the bucket or folder is touched.

The same merge finds the opposite too: keys that rows name and the store does not hold (a
bucket restored short of a database, files deleted by hand). Those are counted and the first
``MISSING_SAMPLE`` listed; nothing is changed for them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.utils import timezone

from labeling.core.storage import store_errors, store_lock, store_references

BATCH = 500  # orphans deleted per lock
MISSING_SAMPLE = 20  # missing files named in the summary
PROGRESS_EVERY_SECONDS = 2.0


def _prefixes() -> list[str]:
    """The key prefixes of every registered reference, in byte order (like everything the
    merge reads)."""
    return sorted({r.prefix for r in store_references()}, key=str.encode)


def _referenced_sql() -> str:
    """Every referenced key, in byte order: one SELECT per registered reference, with the
    table and column names the owning app registered, quoted as identifiers. An empty key
    names nothing (a model export not made yet)."""
    q = connection.ops.quote_name
    union = " UNION ".join(
        f"SELECT {q(r.column)} AS key FROM {q(r.table)} WHERE {q(r.column)} <> ''"
        for r in store_references()
    )
    return f'SELECT key FROM ({union}) refs ORDER BY key COLLATE "C"'


def _taken_since_sql() -> str:
    """The keys among %(keys)s that rows added since the marks name (mark_<table>)."""
    q = connection.ops.quote_name
    return " UNION ".join(
        f"SELECT {q(r.column)} FROM {q(r.table)} "
        f"WHERE id > %(mark_{r.table})s AND {q(r.column)} = ANY(%(keys)s)"
        for r in store_references()
    )


@dataclass
class SweepSummary:
    dry_run: bool
    scanned: int = 0  # files in the store under the registered prefixes
    referenced: int = 0
    too_recent: int = 0  # unreferenced but younger than min_age: left for a later sweep
    deleted: list[str] = field(default_factory=list)  # or, in a dry run, would be
    deleted_bytes: int = 0
    kept_late: int = 0  # unreferenced during the walk, referenced again before deletion
    missing: int = 0  # named by a row, not in the store
    missing_sample: list[str] = field(default_factory=list)  # the first MISSING_SAMPLE of them


def store_sweep(
    *,
    min_age: timedelta = timedelta(hours=24),
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> SweepSummary:
    summary = SweepSummary(dry_run=dry_run)
    say = progress or (lambda message: None)
    marks = _marks()
    # The referenced keys stream from a server-side cursor; outside a transaction Django
    # makes it WITH HOLD, so each batch below commits (and releases the lock) on its own.
    referenced = _referenced_keys()
    try:
        _merge(referenced, marks, timezone.now() - min_age, summary, say)
    finally:
        referenced.close()  # the server-side cursor, when the store's keys ran out first
    return summary


def store_missing(*, progress: Callable[[str], None] | None = None) -> SweepSummary:
    """The same walk, read-only: which files that rows name the store does not hold.
    Unreferenced files are only counted (``scanned - referenced``), never looked at."""
    summary = SweepSummary(dry_run=True)
    referenced = _referenced_keys()
    try:
        _merge(referenced, {}, None, summary, progress or (lambda message: None))
    finally:
        referenced.close()
    return summary


def _merge(
    referenced: Iterator[str],
    marks: dict[str, int],
    cutoff,
    summary: SweepSummary,
    say: Callable[[str], None],
) -> None:
    """Walk both streams; ``cutoff`` None: only count (``store_missing``)."""
    pending: list[tuple[str, int]] = []
    last_report = time.monotonic()
    ref = next(referenced, None)
    for key in _store_keys():
        summary.scanned += 1
        while ref is not None and ref < key:
            _note_missing(ref, summary)
            ref = next(referenced, None)
        if ref == key:
            summary.referenced += 1
            ref = next(referenced, None)
        elif cutoff is None:
            pass
        elif _modified(key) > cutoff:
            summary.too_recent += 1
        else:
            pending.append((key, _size(key)))
            if len(pending) >= BATCH:
                _delete(pending, marks, summary)
                pending = []
        if time.monotonic() - last_report > PROGRESS_EVERY_SECONDS:
            last_report = time.monotonic()
            say(
                f"{summary.scanned:,} files scanned, {summary.referenced:,} in use, "
                f"{len(summary.deleted) + len(pending):,} unreferenced"
            )
    _delete(pending, marks, summary)
    while ref is not None:  # named by rows, past the store's last key
        _note_missing(ref, summary)
        ref = next(referenced, None)


def _note_missing(key: str, summary: SweepSummary) -> None:
    summary.missing += 1
    if len(summary.missing_sample) < MISSING_SAMPLE:
        summary.missing_sample.append(key)


def _marks() -> dict[str, int]:
    """The highest row ids once no upload is half-done (taking the exclusive lock waits for
    every upload transaction holding it shared): every row at or below them is committed and
    seen by the walk; rows above them are re-checked before anything is deleted."""
    with transaction.atomic(), connection.cursor() as cursor:
        store_lock(shared=False)
        tables = [r.table for r in store_references()]
        q = connection.ops.quote_name
        cursor.execute(
            "SELECT " + ", ".join(f"(SELECT coalesce(max(id), 0) FROM {q(t)})" for t in tables)
        )
        return {f"mark_{t}": mark for t, mark in zip(tables, cursor.fetchone(), strict=True)}


def _referenced_keys() -> Iterator[str]:
    with connection.chunked_cursor() as cursor:
        cursor.execute(_referenced_sql())
        while rows := cursor.fetchmany(2000):
            for (key,) in rows:
                yield key


def _store_keys(prefix: str = "") -> Iterator[str]:
    """Every file key under the registered prefixes, in byte order (what ORDER BY ...
    COLLATE "C" gives)."""
    if not prefix:
        for top in _prefixes():
            yield from _store_keys(top)
        return
    try:
        with store_errors():
            dirs, files = default_storage.listdir(prefix)
    except (FileNotFoundError, NotADirectoryError):
        return
    # A folder's keys all start with "name/": sort it as that, so "a.png" < "a/..." holds.
    entries = sorted([(f"{d}/", True) for d in dirs] + [(f, False) for f in files])
    for name, is_dir in entries:
        if is_dir:
            yield from _store_keys(f"{prefix}/{name[:-1]}")
        else:
            yield f"{prefix}/{name}"


def _modified(key: str):
    with store_errors():
        return default_storage.get_modified_time(key)


def _size(key: str) -> int:
    try:
        with store_errors():
            return default_storage.size(key)
    except OSError:
        return 0


def _delete(batch: list[tuple[str, int]], marks: dict[str, int], summary: SweepSummary) -> None:
    if not batch:
        return
    keys = [key for key, _ in batch]
    with transaction.atomic(), connection.cursor() as cursor:
        store_lock(shared=False)  # no upload commits a row for one of these meanwhile
        cursor.execute(_taken_since_sql(), {**marks, "keys": keys})
        taken = {row[0] for row in cursor.fetchall()}
        for key, size in batch:
            if key in taken:
                summary.kept_late += 1
                continue
            if not summary.dry_run:
                with store_errors():
                    default_storage.delete(key)
            summary.deleted.append(key)
            summary.deleted_bytes += size
