"""Scoring the whole pool with one model, for the jobs that re-order the queue (training and
activation): every image is scored (labeled ones too, so disagreements with people show), the
acquisition batch is chosen from the waiting ones.

A head fitted on the project's current backbone is scored from the backbone's stored
embeddings: its head alone over the (N, D) vectors (``training.score.score_features``), no
image read and no ResNet pass, except over the images without a stored vector yet (uploaded
since), which are embedded first and stored (``jobs/head.py::embeddings_for``). Any other
model - trained from scratch, fine-tuned, or on an older backbone whose vectors were
replaced - is scored on pixels on Ray (``training.score.run_scoring``).
"""

from __future__ import annotations

import numpy as np

from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.learning.backbones import (
    backbone_newest,
    embeddings_read,
    embeddings_write_model,
)
from labeling.learning.jobs.base import Job
from labeling.learning.jobs.head import embeddings_for
from labeling.learning.models import Backbone, ModelVersion
from labeling.learning.writeback import cache_dir, copy_scores, image_refs, local_checkpoint
from training import handover
from training.contracts import HEAD_FIT, ImageRef, ScoreResult, ScoreSpec
from training.score import run_scoring, score_features

# Images the acquisition strategy picks together (diversity acts within this batch); the rest
# of the queue follows by score.
SELECT_SIZE = 50


def score_pool(job: Job, version: ModelVersion):
    """(ScoreResult, the waiting images' keys), or None for a project with no images."""
    run, project = job.run, job.project
    rows = list(
        Image.objects.filter(project=project).values_list("id", "sha256", "storage_key", "status")
    )
    pool = {str(i) for i, _, _, status in rows if status in QUEUE_STATUSES}
    labeled = sum(1 for *_, status in rows if status == ImageStatus.LABELED)
    if not rows:
        return None
    backbone = version.backbone
    # Stored vectors are the newest backbone's only (one row per image): a model on an older
    # one goes through its own ResNet rather than overwrite them. A fine-tuned model's trunk
    # is its own, no longer the backbone's: it goes through it too.
    stored = (
        backbone is not None
        and version.metrics.get("trained") == HEAD_FIT
        and backbone == backbone_newest(project)
    )
    # From stored vectors no image is read: no paths (a remote store would copy every image).
    items = (
        tuple(ImageRef(key=str(i), sha256=sha, path="") for i, sha, _, _ in rows)
        if stored
        else tuple(image_refs([row[:3] for row in rows]))
    )
    spec = ScoreSpec(
        checkpoint_path=local_checkpoint(version.checkpoint_key),
        items=items,
        cache_dir=str(cache_dir()),
        strategy=project.strategy,
        select_size=SELECT_SIZE,
        # The acquisition batch comes from the pool only; labeled images are scored
        # for their predictions (disagreements with humans), not for selection.
        candidates=tuple(sorted(pool)),
        seed=run.pk,
        # The labels so far: the model's, or the project's now if more (a rollback's older model).
        picker=round_picker(project, labels=max(version.labels_used, labeled)),
    )
    if stored:
        return score_from_embeddings(job, backbone, spec, rows), pool
    return run_scoring(spec, progress=lambda s, f: job.progress("score", f)), pool


def round_picker(project, *, labels: int) -> str:
    """What picks the round's acquisition batch (``training.handover.picker``): typical images
    (TypiClust) while ``labels`` are fewer than ``handover.HANDOVER_LABELS_PER_CLASS`` per
    class, in a project with a backbone; the project's strategy otherwise (docs/benchmarks.md,
    "Hand-over": under FixMatch the first typical batch does not help)."""
    if backbone_newest(project) is None:
        return handover.UNCERTAIN
    return handover.picker(
        labels=labels,
        classes=len(project.labels),
        labels_per_class=handover.HANDOVER_LABELS_PER_CLASS,  # at call time: tests set it
    )


def score_from_embeddings(
    job: Job, backbone: Backbone, spec: ScoreSpec, rows: list[tuple]
) -> ScoreResult:
    """``run_scoring``'s result for a model on ``backbone``, from its stored embeddings; the
    images without one (``rows``: id, sha256, storage key, ...) are embedded and stored first."""
    vectors = embeddings_read(backbone, [int(item.key) for item in spec.items])
    missing = image_refs([row[:3] for row in rows if row[0] not in vectors])
    failed: tuple[str, ...] = ()
    if missing:
        more, failed = embeddings_for(
            job, backbone, missing, progress=lambda s, f: job.progress("score", 0.9 * f)
        )
        vectors.update(more)
    keys = [item.key for item in spec.items if int(item.key) in vectors]
    features = (
        np.stack([vectors[int(key)] for key in keys])
        if keys
        else np.zeros((0, backbone.embed_dim), dtype=np.float16)
    )
    return score_features(
        spec,
        keys,
        features,
        failed=failed,
        progress=lambda s, f: job.progress("score", 0.9 + f / 10),
    )


def write_pool_scores(job: Job, scorer: ModelVersion, scored, *, promote: bool) -> None:
    """Inside the write-back transaction: the queue's priorities, predictions and scores from
    ``scorer`` - unless it was not promoted and the active model changed meanwhile (an admin
    rolled back: that activation's own run re-scores the queue)."""
    if scored is not None and (promote or scorer == job.active_version()):
        result, pool = scored
        copy_scores(job.project, scorer, result, pool)
        if backbone_newest(job.project) is None:
            # No backbone: the model's own features are what "similar" means in the project
            # (``labeling/learning/similar.py``), kept for the model that orders the queue.
            embeddings_write_model(scorer, result.keys, result.embeddings)


def picker_used(scored) -> str | None:
    """Which picker chose the round's acquisition batch ("typical" or "uncertain"; None: no
    images were scored), for the run's metrics."""
    return None if scored is None else scored[0].picker
