"""The object store: images (content-addressed), model checkpoints and other artifacts, on top
of Django's storage API. Infrastructure every app uses; it knows no app's models: an app
whose rows name objects registers them (``store_reference_register``).

An image's key is derived from the bytes (``images/ab/cd/<sha256>.<ext>``), so the same file is
stored once however many projects import it, and a retried upload rewrites nothing.
The backend is ``STORAGES["default"]``: the filesystem under ``var/media`` by default, an
S3-compatible bucket (django-storages) when ``LABELLOOP_STORAGE=s3``.

Because a file can outlive its rows (a deleted project) and a new upload can reuse a file
that is already there, "nothing references this file, delete it" and "this file exists,
reference it" must not interleave. ``store_lock``: ingest holds it shared while it inserts
rows (and re-checks that reused files are still there); whoever deletes unreferenced files
(``manage.py sweep_store``, an ingest undoing a failed batch) holds it exclusively while it
re-checks the references and deletes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection

logger = logging.getLogger(__name__)

STORE_LOCK_KEY = 0x4C4C5354  # a PostgreSQL advisory lock id ("LLST"), for store_lock

EXTENSIONS = {
    "PNG": "png",
    "JPEG": "jpg",
    "WEBP": "webp",
    "BMP": "bmp",
    "GIF": "gif",
    "TIFF": "tif",
}


@dataclass(frozen=True)
class StoreReference:
    """Rows of one model name objects of the store in one column, under one key prefix.
    The app that owns the model registers it (``store_reference_register``, from its
    ``AppConfig.ready()``): the store's sweeps and backups read references through these and
    never name another app's tables."""

    table: str  # the model's db_table
    column: str  # the column holding the key
    prefix: str  # the first segment of every key it names ("images", "models")


_REFERENCES: dict[str, StoreReference] = {}


def store_reference_register(*, model, field: str, prefix: str) -> None:
    """Declare that ``model.field`` names objects of the store under ``prefix/``."""
    reference = StoreReference(model._meta.db_table, model._meta.get_field(field).column, prefix)
    _REFERENCES[reference.table] = reference


def store_references() -> list[StoreReference]:
    """Every registered reference, in the byte order of their prefixes."""
    return sorted(_REFERENCES.values(), key=lambda r: (r.prefix.encode(), r.table))


class StoreUnavailable(OSError):
    """The image store refused or could not be reached: a bucket gone, an endpoint down,
    credentials refused. An ``OSError``, like a full disk, so whatever handles the filesystem
    store's failures (an upload's rejected files, an export's error list) handles a bucket's."""


def _backend_errors() -> tuple[type[BaseException], ...]:
    """What an S3 store raises besides ``OSError`` (django-storages already turns a missing
    object into ``FileNotFoundError``); nothing to add without boto3."""
    try:  # boto3 comes with the optional S3 store (pip install labelloop[s3])
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return ()
    return (BotoCoreError, ClientError)


BACKEND_ERRORS = _backend_errors()


@contextmanager
def store_errors() -> Iterator[None]:
    """Turn what a remote store raises into ``StoreUnavailable`` (an ``OSError``)."""
    try:
        yield
    except BACKEND_ERRORS as exc:
        raise StoreUnavailable(str(exc)) from exc


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def storage_key(*, sha256: str, image_format: str) -> str:
    return f"images/{sha256[:2]}/{sha256[2:4]}/{sha256}.{EXTENSIONS[image_format]}"


def storage_put(*, key: str, data: bytes) -> bool:
    """Store ``data`` under ``key``. Returns True when this call created the object."""
    if storage_exists(key=key):
        return False
    try:
        with store_errors():
            saved = default_storage.save(key, ContentFile(data))
    except OSError:
        # A write that failed part-way (disk full, I/O error) can leave an empty or truncated
        # file under the key; the next upload of the same bytes would find it "present" and
        # keep it. Remove it, unless another writer completed the same content meanwhile.
        _remove_partial(key=key, size=len(data))
        raise
    if saved != key:
        # Another process stored the same content between exists() and save(); the storage
        # gave ours a new name. Keep one copy: the content is identical by construction.
        storage_delete(key=saved)
        return False
    return True


def _remove_partial(*, key: str, size: int) -> None:
    try:
        with store_errors():
            if default_storage.exists(key) and default_storage.size(key) != size:
                default_storage.delete(key)
    except OSError:
        logger.warning("could not remove the partial file %s from the image store", key)


def storage_exists(*, key: str) -> bool:
    with store_errors():
        return default_storage.exists(key)


def storage_delete(*, key: str) -> None:
    with store_errors():
        default_storage.delete(key)


def storage_open(*, key: str):
    """The stored file, open for reading. ``FileNotFoundError`` when it is not in the store,
    ``StoreUnavailable`` when the store cannot say."""
    with store_errors():
        return default_storage.open(key, "rb")


def storage_local_path(*, key: str) -> str | None:
    """A filesystem path for the worker, when the store is a local filesystem."""
    try:
        return default_storage.path(key)
    except NotImplementedError:
        return None


def store_lock(*, shared: bool) -> None:
    """Take the image store's advisory lock until the current transaction ends (call it in
    ``transaction.atomic()``): shared to reference files, exclusive to delete them."""
    with connection.cursor() as cursor:
        if shared:
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s)", [STORE_LOCK_KEY])
        else:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [STORE_LOCK_KEY])
