"""Images that arrive in a project that already has a model: a `new_images` run scores them
with the active model and slots them into the queue where their scores put them, so an upload
to a running project is labeled in order of usefulness (and shows the model's suggestions)
now, not after the next retrain. Only the new images are scored: the run's cost is the size of
the upload, not of the pool.

Where a newcomer goes. A scoring run's queue is its acquisition batch (chosen together, e.g.
for diversity) and then every other image by acquisition score, highest first
(`training.acquisition.rank`). A newcomer joins that tail between the
images whose scores surround its own; the batch keeps its place, and images nobody has scored
(priority 0) stay after every scored one. In a `random` project a newcomer gets a random
place, as every other image has.

    .venv/bin/python -m pytest tests/labeling/learning/test_new_images.py -q
"""

from __future__ import annotations

import numpy as np

from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning.backbones import backbone_newest, embeddings_write_model
from labeling.learning.jobs.base import Job
from labeling.learning.models import ImageScore, ModelVersion, RunTrigger, TrainingRun
from labeling.learning.writeback import cache_dir, image_refs, local_checkpoint, write_scores
from labeling.projects.models import Strategy
from training.contracts import ScoreSpec
from training.score import run_scoring


def slot_priorities(
    priority: np.ndarray,
    score: np.ndarray,
    new_score: np.ndarray,
    *,
    strategy: str,
    seed: int = 0,
) -> np.ndarray:
    """Priorities (higher = label sooner) for newcomers with acquisition scores `new_score`,
    given the queue's scored images (`priority`, `score`; any order). Every newcomer gets a
    priority above 0 and unequal to any existing one; newcomers are ordered among themselves
    by score, highest first (ties: the order given).

    The tail is the longest end of the queue order whose scores never rise; what comes before
    it is the acquisition batch (for `margin` and the like, whose batch is the top scores, the
    whole queue is tail)."""
    m = len(new_score)
    priority = np.asarray(priority, dtype=np.float64)
    new_score = np.asarray(new_score, dtype=np.float64)
    if m == 0:
        return np.zeros(0, dtype=np.float64)
    if strategy == Strategy.RANDOM:
        # A random place among the queue's: uniform in (0, top + 1).
        top = float(priority.max()) if len(priority) else 0.0
        return (top + 1.0) * (1.0 - np.random.default_rng(seed).random(m))
    order = np.argsort(-priority, kind="stable")
    ranked = np.asarray(score, dtype=np.float64)[order]
    rises = np.flatnonzero(ranked[1:] > ranked[:-1])
    start = int(rises[-1]) + 1 if len(rises) else 0
    head, tail = order[:start], order[start:]
    # Gap j lies after the tail's first j images: above the first sits the batch (or nothing),
    # below the last the unscored images at 0.
    ceiling = float(priority[head].min()) if len(head) else float(priority.max(initial=0.0)) + 1
    upper = np.concatenate([[ceiling], priority[tail]])
    lower = np.concatenate([priority[tail], [0.0]])
    gap = np.searchsorted(-ranked[start:], -new_score, side="right")
    out = np.empty(m, dtype=np.float64)
    for j in np.unique(gap):
        members = np.flatnonzero(gap == j)
        members = members[np.argsort(-new_score[members], kind="stable")]
        # Evenly inside (lower, upper), the highest score nearest the top.
        steps = np.arange(1, len(members) + 1) / (len(members) + 1)
        out[members] = upper[j] - (upper[j] - lower[j]) * steps
    return out


def newcomer_rows(project, version: ModelVersion) -> list[tuple[int, str, str]]:
    """(id, sha256, storage key) of the queue's images that `version` has not scored."""
    return list(
        Image.objects.filter(project=project, status__in=QUEUE_STATUSES)
        .exclude(imagescore__model_version=version)
        .order_by("id")
        .values_list("id", "sha256", "storage_key")
    )


def score_newcomers(run: TrainingRun, version: ModelVersion, progress):
    """Score the images `version` has not seen; None when there are none."""
    rows = newcomer_rows(run.project, version)
    if not rows:
        return None
    return run_scoring(
        ScoreSpec(
            checkpoint_path=local_checkpoint(version.checkpoint_key),
            items=tuple(image_refs(rows)),
            cache_dir=str(cache_dir()),
            strategy=run.project.strategy,
            seed=run.pk,
        ),
        progress=progress,
    )


def write_newcomers(run: TrainingRun, version: ModelVersion, result) -> dict:
    """Inside the caller's write-back transaction: the newcomers' predictions and places.
    Returns the run's metrics."""
    if result is None:
        return {"scored": 0, "failed_items": 0, "version": version.number}
    project = run.project
    # The waiting images `version` has scored: by construction, none of the newcomers.
    existing = ImageScore.objects.filter(
        model_version=version, image__project=project, image__status__in=QUEUE_STATUSES
    ).values_list("image__priority", "score")
    known = np.array(list(existing), dtype=np.float64).reshape(-1, 2)
    slots = slot_priorities(
        known[:, 0],
        known[:, 1],
        np.asarray(result.scores, dtype=np.float64),
        strategy=project.strategy,
        seed=run.pk,
    )
    write_scores(project, version, result, dict(zip(result.keys, slots.tolist(), strict=True)))
    if backbone_newest(project) is None:
        # The model's features are the project's embeddings (similarity search, the map):
        # the newcomers get theirs now, and the worker adds them to the index after the run.
        embeddings_write_model(version, result.keys, result.embeddings)
    return {
        "scored": len(result.keys),
        "failed_items": len(result.failed_items),
        "version": version.number,
    }


class NewImagesJob(Job):
    """Score the images the active model has not seen; slot them into the queue."""

    trigger = RunTrigger.NEW_IMAGES
    done = "new images scored"

    def compute(self):
        version = self.active_version()
        if version is None:
            raise RuntimeError("no active model to score the new images with")
        progress = lambda s, f: self.progress("score", f)  # noqa: E731
        return version, self.stage("score", lambda: score_newcomers(self.run, version, progress))

    def write_back(self, result) -> dict:
        version, scored = result
        # Rolled back meanwhile: that activation's run re-scores every image.
        same = self.active_version() == version
        return write_newcomers(self.run, version, scored if same else None)
