"""Cold start: the queue's order for a project no model has seen yet (DESIGN.md section 4,
step 2). The ordering itself is `training.acquisition.coverage_order`: on the backbone's
stored embeddings where the project has a backbone, else on thumbnails
(`training.cluster.run_cold_start`, decoding on Ray).

    .venv/bin/python -m pytest tests/labeling/learning/test_cold_start.py -q
"""

from __future__ import annotations

import numpy as np

from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning.backbones import backbone_newest, embeddings_read
from labeling.learning.jobs.base import Job
from labeling.learning.models import RunTrigger, TrainingRun
from labeling.learning.writeback import cache_dir, image_refs, write_cold_start
from training.acquisition import coverage_order, unit_rows
from training.cluster import run_cold_start
from training.contracts import ColdStartOrder

# The first this-many images of the coverage order get priorities (the rest keep random
# order), chosen from at most COLD_START_SAMPLE unlabeled images drawn at random, which bounds
# the decode and the O(sample x head) k-center however large the pool.
COLD_START_HEAD = 1000
COLD_START_SAMPLE = 50_000


def cold_start_order(run: TrainingRun):
    """(ColdStartOrder of a random sample of the unlabeled pool, the sample's size, the
    features coverage was measured on)."""
    project = run.project
    rows = list(
        Image.objects.filter(project=project, status__in=QUEUE_STATUSES)
        .order_by("random_key")
        .values_list("id", "sha256", "storage_key")[:COLD_START_SAMPLE]
    )
    features = _backbone_features(project, rows)
    if features is not None:
        # The backbone's view of the pool: coverage (typical, diverse) in its feature space.
        order = coverage_order(unit_rows(features), limit=COLD_START_HEAD, seed=run.pk)
        return ColdStartOrder(tuple(str(rows[i][0]) for i in order)), len(rows), "backbone"
    items = tuple(image_refs(rows))
    order = run_cold_start(
        items,
        cache_dir=str(cache_dir()),
        input_size=project.input_size,
        input_channels=project.input_channels,
        limit=COLD_START_HEAD,
        seed=run.pk,
    )
    return order, len(rows), "thumbnails"


def _backbone_features(project, rows) -> np.ndarray | None:
    """(N, D) float32 features of ``rows`` from the project's backbone, when it has one and
    every sampled image has its embedding (else thumbnails order the queue)."""
    backbone = backbone_newest(project)
    if backbone is None or not rows:
        return None
    stored = embeddings_read(backbone, [row[0] for row in rows])
    if len(stored) < len(rows):
        return None
    return np.stack([stored[row[0]] for row in rows]).astype(np.float32)


class ColdStartJob(Job):
    """Order the queue for coverage: the head of the coverage order first, every other
    waiting image after it in random order."""

    trigger = RunTrigger.COLD_START
    spans = {"order": (0.0, 0.95), "write-back": (0.95, 1.0)}
    done = "queue ordered for coverage"

    def compute(self):
        return self.stage("order", lambda: cold_start_order(self.run))

    def write_back(self, result) -> dict:
        order, sampled, features = result
        head = [int(key) for key in order.keys[:COLD_START_HEAD]]
        write_cold_start(self.project, head)
        return {
            "ordered": len(head),
            "sampled": sampled,
            "failed_items": len(order.failed_items),
            "features": features,  # what coverage was measured on: "backbone" or "thumbnails"
        }
