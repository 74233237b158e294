"""The worker side of model exports: a thread of the worker that makes the files
``GET /api/model-versions/{id}/export/`` asks for (``model_exports``, the web side; LISTEN/NOTIFY
wakes it), and ``manage.py export_model``, which makes one in its own process.

A pending row is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` and kept locked while the
file is made (seconds): two workers never make the same file, and a worker that dies
mid-export releases the row, still pending, to the next one. The file goes to the object store
under ``exports/<project slug>/`` with the SHA-256 of its bytes in the key; its metadata is
``training.export``'s, plus the project, the version and its metrics. int8 exports are
calibrated on up to ``CALIBRATION_IMAGES`` of the project's images (ordered by SHA-256: a
deterministic sample as good as a random one).
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from labeling.core.storage import file_sha256, storage_open
from labeling.images.models import Image
from labeling.learning import model_exports
from labeling.learning.models import ModelExport, ModelVersion
from labeling.learning.predict_server import Listener
from labeling.learning.writeback import local_checkpoint, renames_seen
from labeling.projects.labels import follow_renames
from labeling.projects.models import Project
from training.data import DECODE_ERRORS, decode_image
from training.export import CALIBRATION_IMAGES, export_model
from training.models import load_checkpoint

logger = logging.getLogger(__name__)


class Exporter(Listener):
    """Makes pending exports from a thread of the worker, one at a time."""

    channels = (model_exports.CHANNEL,)
    name = "exporter"

    def answer_pending(self) -> None:
        while not self.stopping.is_set():
            with transaction.atomic():
                export = (
                    ModelExport.objects.select_for_update(skip_locked=True)
                    .filter(status=ModelExport.Status.PENDING)
                    .select_related("model_version__project")
                    .order_by("created_at")
                    .first()
                )
                if export is None:
                    return
                export_build(export)


def export_build(export: ModelExport) -> None:
    """Make `export`'s file and save the row, ready or failed (with the error). Call it with
    the row locked (``select_for_update``) inside a transaction."""
    started = time.perf_counter()
    try:
        key, size, sha256, metadata = _make(export)
    except Exception as exc:  # the caller is told, as the export's error; never a 500
        logger.exception("export %s failed", export.pk)
        export.status, export.error = ModelExport.Status.FAILED, f"{type(exc).__name__}: {exc}"
    else:
        export.status, export.error = ModelExport.Status.READY, ""
        export.file_key, export.size_bytes, export.sha256 = key, size, sha256
        export.metadata = metadata
    export.seconds = round(time.perf_counter() - started, 3)
    export.finished_at = timezone.now()
    export.save()


def _make(export: ModelExport) -> tuple[str, int, str, dict]:
    version = export.model_version
    model, meta = load_checkpoint(local_checkpoint(version.checkpoint_key))
    # Its class names as the project's have been renamed since it was trained.
    renames = Project.objects.values_list("label_renames", flat=True).get(pk=version.project_id)
    classes = follow_renames(list(meta["classes"]), renames[renames_seen(version) :])
    calibration = None
    if export.quantize:
        calibration = calibration_images(
            version, size=int(meta["input_size"]), channels=int(meta["input_channels"])
        )
    extra = {
        "project": version.project.slug,
        "model_version": version.number,
        "trained_on_labels": version.labels_used,
        "metrics": {k: version.metrics[k] for k in ("accuracy",) if k in version.metrics},
        "calibration_images": 0 if calibration is None else len(calibration),
    }
    suffix = model_exports.FORMATS[export.format]
    with tempfile.TemporaryDirectory(prefix="labelloop-export-") as tmp:
        path = Path(tmp) / f"model{suffix}"
        metadata = export_model(
            model,
            meta,
            path,
            fmt=export.format,
            quantize=export.quantize or None,
            calibration=calibration,
            classes=classes,
            extra=extra,
        )
        sha256 = file_sha256(path)
        kind = export.format + (f"-{export.quantize}" if export.quantize else "")
        key = f"exports/{version.project.slug}/v{version.number}-{kind}-{sha256[:16]}{suffix}"
        if default_storage.exists(key):  # a crash may have left a partial file under it
            default_storage.delete(key)
        with open(path, "rb") as handle:
            key = default_storage.save(key, File(handle))
        return key, path.stat().st_size, sha256, metadata


def calibration_images(version: ModelVersion, *, size: int, channels: int) -> np.ndarray:
    """Up to CALIBRATION_IMAGES of the version's project's images, decoded as the model
    sees them: uint8 (N, channels, size, size). Unreadable ones are skipped."""
    keys = (
        Image.objects.filter(project_id=version.project_id)
        .order_by("sha256")
        .values_list("storage_key", flat=True)[: CALIBRATION_IMAGES * 2]
    )
    arrays: list[np.ndarray] = []
    for key in keys:
        try:
            with storage_open(key=key) as handle:
                arrays.append(decode_image(handle.read(), size=size, channels=channels))
        except (*DECODE_ERRORS, OSError):
            continue
        if len(arrays) == CALIBRATION_IMAGES:
            break
    if not arrays:
        raise ValueError("int8 needs the project's images to calibrate on; none could be read")
    return np.stack(arrays)
