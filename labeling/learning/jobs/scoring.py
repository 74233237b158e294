"""Scoring the whole pool with one model, for the jobs that re-order the queue (training and
activation): every image is scored (labeled ones too, so disagreements with people show), the
acquisition batch is chosen from the waiting ones."""

from __future__ import annotations

from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning.jobs.base import Job
from labeling.learning.models import ModelVersion
from labeling.learning.writeback import cache_dir, copy_scores, image_refs, local_checkpoint
from training.contracts import ScoreSpec
from training.score import run_scoring

# Images the acquisition strategy picks together (diversity acts within this batch); the rest
# of the queue follows by score.
SELECT_SIZE = 50


def score_pool(job: Job, version: ModelVersion):
    """(ScoreResult, the waiting images' keys), or None for a project with no images."""
    run, project = job.run, job.project
    rows = list(
        Image.objects.filter(project=project).values_list("id", "sha256", "storage_key", "status")
    )
    items = tuple(image_refs([row[:3] for row in rows]))
    pool = {str(i) for i, _, _, status in rows if status in QUEUE_STATUSES}
    if not items:
        return None
    result = run_scoring(
        ScoreSpec(
            checkpoint_path=local_checkpoint(version.checkpoint_key),
            items=items,
            cache_dir=str(cache_dir()),
            strategy=project.strategy,
            select_size=SELECT_SIZE,
            # The acquisition batch comes from the pool only; labeled images are scored
            # for their predictions (disagreements with humans), not for selection.
            candidates=tuple(sorted(pool)),
            seed=run.pk,
        ),
        progress=lambda s, f: job.progress("score", f),
    )
    return result, pool


def write_pool_scores(job: Job, scorer: ModelVersion, scored, *, promote: bool) -> None:
    """Inside the write-back transaction: the queue's priorities, predictions and scores from
    ``scorer`` - unless it was not promoted and the active model changed meanwhile (an admin
    rolled back: that activation's own run re-scores the queue)."""
    if scored is not None and (promote or scorer == job.active_version()):
        result, pool = scored
        copy_scores(job.project, scorer, result, pool)
