"""Cold start: the queue's order for a project no model has seen yet (DESIGN.md section 4,
step 2). The ordering itself is `training.cluster.run_cold_start` (coverage on thumbnails,
decoding on Ray).

    .venv/bin/python -m pytest tests/labeling/learning/test_cold_start.py -q
"""

from __future__ import annotations

from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning.jobs.base import Job
from labeling.learning.models import RunTrigger, TrainingRun
from labeling.learning.writeback import cache_dir, image_refs, write_cold_start
from training.cluster import run_cold_start

# The first this-many images of the coverage order get priorities (the rest keep random
# order), chosen from at most COLD_START_SAMPLE unlabeled images drawn at random, which bounds
# the decode and the O(sample x head) k-center however large the pool.
COLD_START_HEAD = 1000
COLD_START_SAMPLE = 50_000


def cold_start_order(run: TrainingRun):
    """(ColdStartOrder of a random sample of the unlabeled pool, the sample's size)."""
    project = run.project
    rows = list(
        Image.objects.filter(project=project, status__in=QUEUE_STATUSES)
        .order_by("random_key")
        .values_list("id", "sha256", "storage_key")[:COLD_START_SAMPLE]
    )
    items = tuple(image_refs(rows))
    order = run_cold_start(
        items,
        cache_dir=str(cache_dir()),
        input_size=project.input_size,
        input_channels=project.input_channels,
        limit=COLD_START_HEAD,
        seed=run.pk,
    )
    return order, len(rows)


class ColdStartJob(Job):
    """Order the queue for coverage: the head of the coverage order first, every other
    waiting image after it in random order."""

    trigger = RunTrigger.COLD_START
    spans = {"order": (0.0, 0.95), "write-back": (0.95, 1.0)}
    done = "queue ordered for coverage"

    def compute(self):
        return self.stage("order", lambda: cold_start_order(self.run))

    def write_back(self, result) -> dict:
        order, sampled = result
        head = [int(key) for key in order.keys[:COLD_START_HEAD]]
        write_cold_start(self.project, head)
        return {"ordered": len(head), "sampled": sampled, "failed_items": len(order.failed_items)}
