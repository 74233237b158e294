"""The worker side of class-activation maps: the predictor thread (``predict_server``) also
LISTENs for the requests ``GET /api/images/{id}/explanation/`` leaves (``explanations``, the
web side) and draws them in batches, with the version's model loaded in-process
(``training.explain``).

    .venv/bin/python -m pytest tests/labeling/learning/test_explanations.py -q
"""

from __future__ import annotations

import logging

import numpy as np
from django.db import transaction
from django.utils import timezone

from labeling.core.storage import storage_open
from labeling.learning.models import Explanation, ModelVersion
from labeling.learning.writeback import local_checkpoint, renames_seen
from labeling.projects.labels import follow_renames
from labeling.projects.models import Project
from training.data import DECODE_ERRORS, decode_image
from training.explain import border_share, class_activation_maps, crop_to_content, overlay_png
from training.models import load_checkpoint

logger = logging.getLogger(__name__)

BATCH = 32  # maps drawn per pass: one forward and one backward pass of the model
ANSWER_FIELDS = ["status", "png", "label", "probability", "border_share", "error", "finished_at"]


def version_labels(version: ModelVersion, meta: dict) -> list[str]:
    """The version's class names, renamed as the project's have been since it was trained."""
    renames = Project.objects.values_list("label_renames", flat=True).get(pk=version.project_id)
    return follow_renames(list(meta["classes"]), renames[renames_seen(version) :])


class Explainer:
    """Draws pending maps, a batch of one version at a time, oldest request first. `models`
    is the predictor's cache of loaded versions (version id -> (model, meta))."""

    def __init__(self, models: dict[int, tuple]) -> None:
        self._models = models

    def model(self, version: ModelVersion) -> tuple:
        if version.pk not in self._models:
            self._models[version.pk] = load_checkpoint(local_checkpoint(version.checkpoint_key))
        return self._models[version.pk]

    def answer_pending(self) -> int:
        """Draw every pending map; returns how many rows were answered."""
        answered = 0
        while True:
            with transaction.atomic():
                pending = Explanation.objects.select_for_update(skip_locked=True).filter(
                    status=Explanation.Status.PENDING
                )
                first = pending.order_by("created_at", "pk").first()
                if first is None:
                    return answered
                rows = list(
                    pending.filter(model_version_id=first.model_version_id)
                    .select_related("image", "model_version")
                    .order_by("created_at", "pk")[:BATCH]
                )
                try:
                    self._draw(rows)
                except Exception as exc:  # the model could not be loaded or run: say so
                    logger.exception("explanations of version %d failed", first.model_version_id)
                    for row in rows:
                        row.status, row.error = Explanation.Status.FAILED, str(exc)
                now = timezone.now()
                for row in rows:
                    row.finished_at = now
                Explanation.objects.bulk_update(rows, ANSWER_FIELDS)
                answered += len(rows)

    def _draw(self, rows: list[Explanation]) -> None:
        version = rows[0].model_version
        model, meta = self.model(version)
        size, channels = meta["input_size"], meta["input_channels"]
        arrays, drawn = [], []
        for row in rows:
            try:
                with storage_open(key=row.image.storage_key) as handle:
                    data = handle.read()
                arrays.append(decode_image(data, size=size, channels=channels))
                drawn.append(row)
            except (FileNotFoundError, *DECODE_ERRORS) as exc:
                row.status = Explanation.Status.FAILED
                row.error = f"the image could not be read: {exc}"
        if not drawn:
            return
        explained = class_activation_maps(model, np.stack(arrays))
        labels = version_labels(version, meta)
        for i, row in enumerate(drawn):
            cam = crop_to_content(explained.maps[i], row.image.width, row.image.height)
            target = int(explained.targets[i])
            row.status = Explanation.Status.DONE
            row.png = overlay_png(cam)
            row.label = labels[target]
            row.probability = round(float(explained.probabilities[i, target]), 6)
            row.border_share = round(border_share(cam), 4)
