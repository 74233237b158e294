"""The web side of predictions for uploaded images: the request goes into a table, a NOTIFY
wakes the workers, and the answer (``predict_server``, in the worker: the web process never
imports torch) comes back in the same row.
"""

from __future__ import annotations

import base64
import time

from django.conf import settings
from django.db import connection

from labeling.core.errors import Conflict, PayloadTooLarge, ServiceError
from labeling.images.validation import Rejected, image_pixels, validate_image
from labeling.learning.models import ModelVersion, PredictionRequest
from labeling.projects.models import Project

CHANNEL = "labelloop_predict"
MAX_FILES = 64
MAX_TOTAL_BYTES = 32 * 1024 * 1024


class NoWorker(ServiceError):
    status = 503
    code = "no_worker"


def predict(*, project: Project, files) -> list[dict]:
    active = ModelVersion.objects.filter(project=project, is_active=True).first()
    if active is None:
        raise Conflict(
            "this project has no trained model yet; start a training run first", code="no_model"
        )
    blobs = _read(files)
    answers: list[dict] = []
    payload = []
    for upload, data in blobs:
        try:
            validate_image(
                data,
                max_bytes=settings.LABELLOOP_MAX_IMAGE_BYTES,
                max_pixels=settings.LABELLOOP_MAX_IMAGE_PIXELS,
            )
        except Rejected as exc:
            answers.append({"name": upload.name, "error": exc.reason})
            continue
        answers.append({"name": upload.name})
        payload.append({"name": upload.name, "data": base64.b64encode(data).decode()})
    if not payload:
        return answers
    request = PredictionRequest.objects.create(
        project=project, model_version=active, images=payload
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(request.pk)])
    deadline = time.monotonic() + settings.LABELLOOP_PREDICT_TIMEOUT
    while time.monotonic() < deadline:
        row = PredictionRequest.objects.filter(pk=request.pk).values("status", "result", "error")[0]
        if row["status"] == PredictionRequest.Status.DONE:
            break
        if row["status"] == PredictionRequest.Status.FAILED:
            PredictionRequest.objects.filter(pk=request.pk).delete()
            raise ServiceError(f"prediction failed: {row['error']}", code="prediction_failed")
        time.sleep(0.05)
    else:
        PredictionRequest.objects.filter(pk=request.pk).delete()
        raise NoWorker(
            "no worker answered in time; is `python manage.py worker` running?",
        )
    PredictionRequest.objects.filter(pk=request.pk).delete()
    results = iter(row["result"])  # one per payload image, in order
    for answer in answers:
        if "error" not in answer:
            answer.update(next(results), model_version=active.number)
    return answers


def _read(files) -> list[tuple[object, bytes]]:
    """Each upload's bytes, once the request is known to be within the caps on files, bytes
    and pixels (from the images' headers: nothing is decoded for a request that is over)."""
    if len(files) > MAX_FILES:
        raise PayloadTooLarge(f"at most {MAX_FILES} files per prediction request")
    blobs = []
    total = 0
    for upload in files:
        data = upload.read(settings.LABELLOOP_MAX_IMAGE_BYTES + 1)
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise PayloadTooLarge(f"at most {MAX_TOTAL_BYTES:,} bytes per prediction request")
        blobs.append((upload, data))
    pixels = sum(image_pixels(data) for _upload, data in blobs)
    cap = settings.LABELLOOP_PREDICT_MAX_PIXELS
    if pixels > cap:
        raise PayloadTooLarge(
            f"these images hold {pixels:,} pixels in all; a prediction request may hold at "
            f"most {cap:,} (LABELLOOP_PREDICT_MAX_PIXELS): send fewer or smaller images",
            code="too_many_pixels",
            details={"pixels": pixels, "max_pixels": cap},
        )
    return blobs
