"""Cold start: the queue's order for a project no model has seen yet (DESIGN.md section 4,
step 2). The worker runs it for `cold_start` runs; the ordering itself is
`training.cluster.run_cold_start` (coverage on thumbnails, decoding on Ray).

    .venv/bin/python -m pytest tests/labeling/learning/test_cold_start.py -q
"""

from __future__ import annotations

from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning.models import TrainingRun
from labeling.learning.writeback import cache_dir, image_refs

# The first this-many images of the coverage order get priorities (the rest keep random
# order), chosen from at most COLD_START_SAMPLE unlabeled images drawn at random, which bounds
# the decode and the O(sample x head) k-center however large the pool.
COLD_START_HEAD = 1000
COLD_START_SAMPLE = 50_000


def cold_start_order(run: TrainingRun):
    """(ColdStartOrder of a random sample of the unlabeled pool, the sample's size)."""
    from training.cluster import run_cold_start

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
