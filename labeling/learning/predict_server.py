"""The worker side of predictions: a thread of the worker that answers the requests
``POST /api/projects/{id}/predict/`` leaves in the database (``predict_requests``, the web
side; LISTEN/NOTIFY wakes it), with the active model loaded in-process. The same thread draws
the class-activation maps ``GET /api/images/{id}/explanation/`` asks for (``explain_server``)."""

from __future__ import annotations

import base64
import logging
import threading

import numpy as np
import psycopg
from django.db import connection, connections, transaction

from labeling.learning import explanations, predict_requests
from labeling.learning.explain_server import Explainer, version_labels
from labeling.learning.models import PredictionRequest
from training.data import decode_image
from training.score import score_arrays

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0  # wait before reconnecting after the database went away


class Listener:
    """A worker thread that answers what the web side leaves in a table: LISTEN on
    `channels` for its NOTIFY (and look every second for requests sent before LISTEN), then
    `serve()`. Survives the database going away."""

    channels: tuple[str, ...] = ()
    name = ""

    def __init__(self, stopping: threading.Event) -> None:
        self.stopping = stopping
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _loop(self) -> None:
        # A lost database (a restart, a failover, a dropped connection) must not end
        # predictions for the rest of the worker's life: reconnect and carry on.
        while not self.stopping.is_set():
            try:
                self._listen()
            except Exception:
                if self.stopping.is_set():
                    break
                logger.exception(
                    "%s: database connection lost; retrying in %g s", self.name, RETRY_SECONDS
                )
                self.stopping.wait(RETRY_SECONDS)
            finally:
                connection.close()

    def _listen(self) -> None:
        params = connections["default"].get_connection_params()
        with psycopg.connect(**params, autocommit=True) as listener:
            for channel in self.channels:
                listener.execute(f"LISTEN {channel}")
            while not self.stopping.is_set():
                self.serve()
                # Wake on NOTIFY, or every second to catch requests sent before LISTEN.
                for _ in listener.notifies(timeout=1.0, stop_after=1):
                    pass

    def serve(self) -> None:
        """Everything pending on the thread's channels."""
        self.answer_pending()

    def answer_pending(self) -> None:
        raise NotImplementedError


class Predictor(Listener):
    """Answers predict requests from a thread, beside whatever run the worker is busy with:
    LISTEN for the web side's NOTIFY, claim the request, run the active model in-process."""

    channels = (predict_requests.CHANNEL, explanations.CHANNEL)
    name = "predictor"

    def __init__(self, stopping: threading.Event) -> None:
        super().__init__(stopping)
        self._models: dict[int, tuple] = {}  # model version id -> (model, meta)
        self.explainer = Explainer(self._models)

    def serve(self) -> None:
        """Predictions first (someone waits on each), then the maps asked for."""
        self.answer_pending()
        self.explainer.answer_pending()

    def answer_pending(self) -> None:
        while True:
            with transaction.atomic():
                request = (
                    PredictionRequest.objects.select_for_update(skip_locked=True)
                    .filter(status=PredictionRequest.Status.PENDING)
                    .select_related("model_version", "project")
                    .order_by("created_at")
                    .first()
                )
                if request is None:
                    return
                try:
                    request.result = self._predict(request)
                    request.status = PredictionRequest.Status.DONE
                except Exception as exc:  # reported to the caller as a 500-free error
                    logger.exception("prediction %s failed", request.pk)
                    request.status, request.error = PredictionRequest.Status.FAILED, str(exc)
                request.save(update_fields=["result", "status", "error"])

    def _predict(self, request: PredictionRequest) -> list[dict]:
        version = request.model_version
        model, meta = self.explainer.model(version)
        # The model's own input shape and classes: the project's may have changed since it
        # was trained (a class added or reordered, another input size for the next model).
        x = np.stack(
            [
                decode_image(
                    base64.b64decode(item["data"]),
                    size=meta["input_size"],
                    channels=meta["input_channels"],
                )
                for item in request.images
            ]
        )
        out = score_arrays(model, x, strategy="least_confidence")
        labels = version_labels(version, meta)  # its classes, renamed as the project's since
        return [
            {
                "predicted": labels[int(out["predicted"][i])],
                "confidence": round(float(out["confidence"][i]), 6),
                "probabilities": {
                    label: round(float(p), 6)
                    for label, p in zip(labels, out["probabilities"][i], strict=True)
                },
            }
            for i in range(len(request.images))
        ]
