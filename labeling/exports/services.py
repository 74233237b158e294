"""Project exports as byte streams: ``json``, ``csv`` and ``imagefolder`` (a zip).

Used by ``GET /api/projects/{id}/export/`` (a StreamingHttpResponse) and by
``python manage.py export --project SLUG --format csv --out digits.csv``.

Every format reads the database in keyset-paginated chunks (``selectors.CHUNK_SIZE`` images,
then their annotations, model versions and reviews: one query each a chunk) and yields bytes
as it goes, so memory stays flat however many images the project has.

Parameters and their defaults:

- ``format``: ``json`` (default), ``csv`` or ``imagefolder``.
- ``labeled``: ``true`` keeps only images with a consensus label. Default ``false`` for json
  and csv (every image); imagefolder holds consensus-labeled images only, so it is always
  ``true`` there and ``labeled=false`` is refused.
- ``predictions``: ``true`` adds the active model's latest prediction to every image (also
  the unlabeled ones: that is what makes the export useful for pre-labeling or review);
  null where no model has scored the image. Default ``true`` for json and csv; ``false``
  leaves the prediction fields out. imagefolder holds human labels only: ``predictions=true``
  is refused there.

json and csv carry each consensus label's quality: ``suspect_score`` (how likely the label
is wrong, from its open or latest review; null if no label check ever flagged it), the
review's decision (``state``, ``decided_by``, ``label_after``), ``consensus_method`` (the
project's) and ``consensus_confidence`` (the image's agreement). In json they are the image's
``quality`` object, null for images without a consensus label; in csv the last columns.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import posixpath
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from labeling.core.errors import ValidationFailed
from labeling.core.storage import storage_open
from labeling.exports.cells import _csv_cell, _number, _safe_name, _time
from labeling.exports.selectors import (
    export_annotations_by_image,
    export_image_chunks,
    export_reviews_by_image,
    export_versions_by_image,
)
from labeling.exports.zipstream import ZipStream
from labeling.projects.models import Project

logger = logging.getLogger(__name__)

FORMATS = ("json", "csv", "imagefolder")
PARAMETERS = ("format", "labeled", "predictions")
CONTENT_TYPES = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "imagefolder": "application/zip",
}
EXTENSIONS = {"json": "json", "csv": "csv", "imagefolder": "zip"}
CSV_COLUMNS = [
    "id",
    "original_name",
    "sha256",
    "status",
    "consensus_label",
    "agreement",
    "annotation_count",  # annotators whose latest label counts; the json has the history
]
CSV_PREDICTION_COLUMNS = ["predicted_label", "confidence", "uncertainty", "model_version"]
# Last, so that readers of the columns before keep their positions; empty for images
# without a consensus label.
CSV_QUALITY_COLUMNS = [
    "suspect_score",
    "review_state",
    "reviewed_by",
    "review_label_after",
    "consensus_method",
    "consensus_confidence",
]
# Written at the zip's root when images could not be read from the store (deleted objects):
# the export goes on without them and says which ones are missing.
ZIP_ERRORS_NAME = "export-errors.txt"
_READ_BYTES = 1 << 16  # image bytes are copied into the zip in 64 KiB pieces

Progress = Callable[[int], None]  # called with the number of images written so far


@dataclass(frozen=True)
class ExportOptions:
    format: str = "json"
    labeled: bool = False
    predictions: bool = True


def _flag(params: Mapping[str, Any], name: str) -> bool | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0"):
        return False
    raise ValidationFailed(
        f"{name} must be true or false, not {str(value)[:50]!r}",
        code="invalid_parameter",
        details={"parameter": name},
    )


def export_options_parse(*, params: Mapping[str, Any]) -> ExportOptions:
    """Validate the export parameters (query string or command line), applying each
    format's defaults. Raises ValidationFailed naming the bad parameter."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise ValidationFailed(
            f"unknown parameter {unknown[0]!r}; the export takes {', '.join(PARAMETERS)}",
            code="invalid_parameter",
            details={"parameter": unknown[0], "known": list(PARAMETERS)},
        )
    # Absent means the default; present but empty is a format like any other: unknown.
    fmt = params.get("format", "json")
    if fmt not in FORMATS:
        raise ValidationFailed(
            f"unknown export format {str(fmt)[:50]!r}; use one of {', '.join(FORMATS)}",
            code="invalid_parameter",
            details={"parameter": "format", "choices": list(FORMATS)},
        )
    labeled, predictions = _flag(params, "labeled"), _flag(params, "predictions")
    if fmt == "imagefolder":
        if labeled is False:
            raise ValidationFailed(
                "labeled=false does not apply to imagefolder: its folders are the consensus "
                "labels, so it holds labeled images only; use format=json or csv for all images",
                code="invalid_parameter",
                details={"parameter": "labeled"},
            )
        if predictions:
            raise ValidationFailed(
                "predictions=true does not apply to imagefolder: it holds human (consensus) "
                "labels only; use format=json or csv for the model's predictions",
                code="invalid_parameter",
                details={"parameter": "predictions"},
            )
        return ExportOptions(format=fmt, labeled=True, predictions=False)
    return ExportOptions(
        format=fmt,
        labeled=bool(labeled),
        predictions=True if predictions is None else predictions,
    )


def export_filename(*, project: Project, options: ExportOptions, now: datetime) -> str:
    return f"{project.slug}-{now:%Y%m%d-%H%M%S}.{EXTENSIONS[options.format]}"


def export_stream(
    *, project: Project, options: ExportOptions, progress: Progress | None = None
) -> Iterator[bytes]:
    """The export's bytes, produced as the chunks are read, all from one snapshot."""
    writers = {"json": _json_stream, "csv": _csv_stream, "imagefolder": _imagefolder_stream}
    return _in_snapshot(writers[options.format](project, options, progress or (lambda c: None)))


def _in_snapshot(stream: Iterator[bytes]) -> Iterator[bytes]:
    """Run ``stream`` in one read-only REPEATABLE READ transaction, so every chunk sees the
    database as it was when the export began: labels, uploads and retrains that land while a
    large export streams out neither appear halfway nor change counts already written (what
    ``pg_dump`` does too). Inside a caller's transaction, that transaction's view is used."""
    outermost = not connection.in_atomic_block  # checked when the first chunk is asked for
    with transaction.atomic():
        if outermost:  # no query has run in the new transaction yet: its mode can be set
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                cursor.execute("SELECT 1")  # takes the snapshot now, before the first bytes
        yield from stream


def _chunks(project: Project, options: ExportOptions) -> Iterator[list[dict[str, Any]]]:
    """Image rows with their label's quality, and the model version behind each prediction
    when predictions are on."""
    for rows in export_image_chunks(project=project, labeled_only=options.labeled):
        reviews = export_reviews_by_image(project=project, rows=rows, labeled_only=options.labeled)
        for row in rows:
            row["quality"] = _quality(project, row, reviews.get(row["id"]))
        if options.predictions:
            versions = export_versions_by_image(
                project=project, rows=rows, labeled_only=options.labeled
            )
            for row in rows:
                row["model_version"], row["model_version_id"] = versions.get(
                    row["id"], (None, None)
                )
        yield rows


def _quality(
    project: Project, row: dict[str, Any], review: dict[str, Any] | None
) -> dict[str, Any] | None:
    if row["consensus_label"] is None:
        return None
    return {
        "suspect_score": _number(review["score"]) if review else None,
        "review": (
            {k: review[k] for k in ("state", "decided_by", "label_after")} if review else None
        ),
        "consensus_method": project.consensus_method,
        "consensus_confidence": _number(row["agreement"]),
    }


def _quality_cells(row: dict[str, Any]) -> list[Any]:
    quality = row["quality"]
    if quality is None:
        return [None] * len(CSV_QUALITY_COLUMNS)
    review = quality["review"] or {}
    return [
        quality["suspect_score"],
        review.get("state"),
        review.get("decided_by"),
        review.get("label_after"),
        quality["consensus_method"],
        quality["consensus_confidence"],
    ]


def _prediction(row: dict[str, Any]) -> dict[str, Any] | None:
    if row["predicted_label"] is None:
        return None
    return {
        "label": row["predicted_label"],
        "confidence": _number(row["confidence"]),
        "uncertainty": _number(row["uncertainty"]),
        "model_version": row["model_version"],
        "model_version_id": row["model_version_id"],
    }


def _json_stream(project: Project, options: ExportOptions, progress: Progress) -> Iterator[bytes]:
    head = {
        "project": {
            "id": project.id,
            "name": project.name,
            "slug": project.slug,
            "labels": list(project.labels),
        },
        "exported_at": _time(datetime.now(UTC)),
        "filters": {"labeled": options.labeled, "predictions": options.predictions},
    }
    # The head's closing brace is replaced by the images array, written one image a line.
    yield (json.dumps(head, ensure_ascii=False)[:-1] + ', "images": [\n').encode()
    count = 0
    for rows in _chunks(project, options):
        annotations = export_annotations_by_image(
            project=project, rows=rows, labeled_only=options.labeled
        )
        lines = []
        for row in rows:
            image = {
                "id": row["id"],
                "original_name": row["original_name"],
                "sha256": row["sha256"],
                "format": row["format"],
                "width": row["width"],
                "height": row["height"],
                "status": row["status"],
                "consensus_label": row["consensus_label"],
                "agreement": _number(row["agreement"]),
                "annotation_count": row["annotation_count"],
                "annotations": [
                    {**a, "created": _time(a["created"])} for a in annotations.get(row["id"], [])
                ],
                "created_at": _time(row["created_at"]),
            }
            if options.predictions:
                image["prediction"] = _prediction(row)
            image["quality"] = row["quality"]
            separator = "" if count == 0 and not lines else ",\n"
            lines.append(separator + json.dumps(image, ensure_ascii=False))
        count += len(rows)
        yield "".join(lines).encode()
        progress(count)
    yield f'\n], "image_count": {count}}}\n'.encode()


def _csv_stream(project: Project, options: ExportOptions, progress: Progress) -> Iterator[bytes]:
    columns = CSV_COLUMNS + (CSV_PREDICTION_COLUMNS if options.predictions else [])
    header = columns + CSV_QUALITY_COLUMNS
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    count = 0
    for rows in _chunks(project, options):
        for row in rows:
            cells = [row[c] for c in columns] + _quality_cells(row)
            writer.writerow([_csv_cell(cell) for cell in cells])
        count += len(rows)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
        progress(count)
    if buffer.tell():
        yield buffer.getvalue().encode()


class _Folders:
    """Label -> folder name, distinct even where two labels clean up to the same name."""

    def __init__(self, labels: list[str]) -> None:
        self._by_label: dict[str, str] = {}
        self._taken: set[str] = {ZIP_ERRORS_NAME}  # a file at the root: no folder of that name
        for label in labels:
            self[label]

    def __getitem__(self, label: str) -> str:
        folder = self._by_label.get(label)
        if folder is None:
            base = folder = _safe_name(label)
            n = 2
            while folder.lower() in self._taken:  # case-insensitive file systems, too
                folder, n = f"{base}-{n}", n + 1
            self._taken.add(folder.lower())
            self._by_label[label] = folder
        return folder


def _entry_name(row: dict[str, Any], folder: str) -> str:
    # The id prefix makes names unique (two uploads may share an original name); the
    # extension is the stored file's, which matches its bytes.
    stem = posixpath.splitext(posixpath.basename(row["original_name"].replace("\\", "/")))[0]
    extension = posixpath.splitext(row["storage_key"])[1]
    return f"{folder}/{row['id']}-{_safe_name(stem)}{extension}"


def _file_chunks(handle) -> Iterator[bytes]:
    with handle:
        while data := handle.read(_READ_BYTES):
            yield data


def _coalesced(pieces: Iterator[bytes], size: int = _READ_BYTES) -> Iterator[bytes]:
    """Join the zip's many small pieces (headers, descriptors, tiny PNGs) into blocks of
    about ``size`` bytes: fewer, larger writes to the socket or file."""
    block = bytearray()
    for piece in pieces:
        block += piece
        if len(block) >= size:
            yield bytes(block)
            block.clear()
    if block:
        yield bytes(block)


def _imagefolder_stream(
    project: Project, options: ExportOptions, progress: Progress
) -> Iterator[bytes]:
    return _coalesced(_zip_pieces(project, progress))


def _zip_pieces(project: Project, progress: Progress) -> Iterator[bytes]:
    archive = ZipStream()
    folders = _Folders(list(project.labels))
    missing: list[str] = []
    count = 0
    for rows in export_image_chunks(project=project, labeled_only=True):
        for row in rows:
            try:
                handle = storage_open(key=row["storage_key"])
            except OSError as exc:  # FileNotFoundError: deleted from the store
                logger.warning(
                    "export of %s: image %s unreadable: %s", project.slug, row["id"], exc
                )
                missing.append(f"{row['id']}\t{row['original_name']}\t{exc.__class__.__name__}")
                continue
            name = _entry_name(row, folders[row["consensus_label"]])
            yield from archive.add(name, _file_chunks(handle), modified=row["created_at"])
        count += len(rows)
        progress(count)
    if missing:
        report = "image id\toriginal name\terror\n" + "\n".join(missing) + "\n"
        yield from archive.add(ZIP_ERRORS_NAME, [report.encode()], modified=datetime.now(UTC))
    yield from archive.finish()
