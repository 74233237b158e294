"""The web side of model exports: ``GET /api/model-versions/{id}/export/`` asks for a file, a
worker makes it (``export_server``: the web process never imports torch), and later requests
download it.

An export is a row per (version, format, quantize): the first request inserts it (pending)
and NOTIFYs the workers; a worker fills in the file (in the object store under ``exports/``),
its size, SHA-256 and metadata, or an error. A ready row's file is served from then on, so
a file is made once per version and kind. A failed row is reported once and deleted, so the
next request tries again. Rows go with their version (and so with their project); their
files too (``model_exports_delete_files``; ``sweep_store`` deletes any left behind).
"""

from __future__ import annotations

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling.core.errors import Conflict, ValidationFailed
from labeling.core.storage import storage_delete, storage_exists
from labeling.learning.models import ModelExport, ModelVersion

CHANNEL = "labelloop_export"
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
QUANTIZATIONS = ("int8",)
# What a client waits before asking again, in seconds: a seed CNN exports in 2-8 s on 2 busy
# cores (tests/training/test_export.py), a ResNet in longer.
RETRY_AFTER = 2
CONTENT_TYPE = "application/octet-stream"


def model_export_options_parse(*, params: dict[str, str]) -> tuple[str, str]:
    """(format, quantize) from the query, quantize "" for float32; 400 naming the problem."""
    unknown = sorted(set(params) - {"format", "quantize"})
    if unknown:
        raise ValidationFailed(
            f"unknown parameter {', '.join(unknown)}; this takes format and quantize",
            code="invalid_parameter",
            details={"parameters": unknown},
        )
    fmt = params.get("format", "")
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"format must be one of {', '.join(FORMATS)}" + (f", not {fmt!r}" if fmt else ""),
            code="invalid_format",
            details={"format": fmt, "choices": list(FORMATS)},
        )
    quantize = params.get("quantize", "")
    if quantize not in ("", *QUANTIZATIONS):
        raise ValidationFailed(
            f"quantize must be {' or '.join(QUANTIZATIONS)} (or left out for float32), "
            f"not {quantize!r}",
            code="invalid_quantize",
            details={"quantize": quantize, "choices": list(QUANTIZATIONS)},
        )
    if quantize and fmt != "onnx":
        raise ValidationFailed(
            f"quantize={quantize} is offered for format=onnx only (ONNX Runtime's static "
            "quantization); TorchScript exports are float32",
            code="invalid_quantize",
            details={"format": fmt, "quantize": quantize},
        )
    return fmt, quantize


def model_export_request(
    *, version: ModelVersion, fmt: str, quantize: str, user=None
) -> ModelExport:
    """The version's export of this kind: ready, or pending (asked of the workers now if it
    was not already). A failed one raises ``Conflict`` with the worker's error and is
    deleted, so that the next request tries again; a ready one whose file is gone from the
    store (deleted by hand) is made again."""
    export = ModelExport.objects.filter(
        model_version=version, format=fmt, quantize=quantize
    ).first()
    if export is not None and export.status == ModelExport.Status.FAILED:
        ModelExport.objects.filter(pk=export.pk, status=ModelExport.Status.FAILED).delete()
        raise Conflict(
            f"the export failed: {export.error}; ask again to retry",
            code="export_failed",
            details={"error": export.error},
        )
    if export is not None and export.status == ModelExport.Status.READY:
        if storage_exists(key=export.file_key):
            return export
        ModelExport.objects.filter(pk=export.pk).delete()
        export = None
    if export is not None:
        return export
    try:
        with transaction.atomic():
            export = ModelExport.objects.create(
                model_version=version, format=fmt, quantize=quantize, requested_by=user
            )
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(export.pk)])
    except IntegrityError:  # asked at the same moment by another request: that one's row
        export = ModelExport.objects.get(model_version=version, format=fmt, quantize=quantize)
    return export


def model_export_filename(*, export: ModelExport) -> str:
    """``<project slug>-v<number>[-int8].<onnx|pt>``."""
    version = export.model_version
    suffix = f"-{export.quantize}" if export.quantize else ""
    return f"{version.project.slug}-v{version.number}{suffix}{FORMATS[export.format]}"


def model_export_status(*, export: ModelExport) -> dict:
    """What a client polling a pending export is told."""
    waited = (timezone.now() - export.created_at).total_seconds()
    return {
        "status": export.status,
        "format": export.format,
        "quantize": export.quantize or None,
        "model_version": export.model_version.number,
        "requested_at": export.created_at,
        "waiting_seconds": round(waited, 1),
        "retry_after": RETRY_AFTER,
    }


def model_exports_delete_files(*, keys: list[str]) -> None:
    """Delete export files whose rows are gone (after the deleting transaction commits).
    An export's file serves only its row, so nothing else can need it; one that cannot be
    deleted now is left to ``sweep_store``."""
    for key in keys:
        try:
            storage_delete(key=key)
        except OSError:
            continue
