"""A training run's snapshot of the labels: consensus labels only, the random exploration
slice held out for evaluation once it is big enough; and, for a project that trains
semi-supervised, a sample of the images nobody labeled."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from labeling.images.models import QUEUE_STATUSES, Image, ImageStatus
from labeling.learning.models import TrainingRun
from labeling.learning.runs import run_record_snapshot
from labeling.learning.writeback import image_refs
from labeling.projects.labels import project_labels_for_write
from labeling.projects.models import Project
from training.contracts import TrainConfig

# Evaluation uses the random exploration slice (unbiased) once it has this many labels;
# before that, a stratified split of all labels (flagged in the metrics as such).
MIN_RANDOM_SLICE = 30


@dataclass
class Snapshot:
    items: list  # training ImageRefs
    labels: list[int]
    val_items: list
    val_labels: list[int]
    val_source: str  # "random_slice" or "split"
    total: int
    classes: list[str]  # the project's classes when the labels were read
    renames: list[list[str]]  # project.label_renames then: later ones rename the model's
    # Images nobody labeled, for FixMatch (Project.semi_supervised); empty: supervised.
    unlabeled_items: list = field(default_factory=list)


def take_snapshot(run: TrainingRun) -> Snapshot:
    """Consensus labels only; the random exploration slice is held out for evaluation.
    The classes and the labels are read together, under the project's share lock, so a
    class rename lands wholly before or wholly after the snapshot."""
    project = run.project
    with transaction.atomic():
        classes, renames = project_labels_for_write(project)
        rows = list(
            Image.objects.filter(project=project, status=ImageStatus.LABELED)
            .exclude(consensus_label=None)
            .values_list("id", "sha256", "storage_key", "consensus_label", "in_random_slice")
            .order_by("id")
        )
    index = {label: i for i, label in enumerate(classes)}
    usable = [row for row in rows if row[3] in index]  # a class removed since: skipped
    refs = image_refs([row[:3] for row in usable])
    train, val = [], []
    for (_, _, _, label, random_slice), ref in zip(usable, refs, strict=True):
        (val if random_slice else train).append((ref, index[label]))
    source = "random_slice"
    if len(val) < MIN_RANDOM_SLICE:
        train, val, source = train + val, [], "split"  # the engine splits val_fraction off
    run_record_snapshot(run=run, labels=len(rows))
    unlabeled = []
    if project.semi_supervised:
        size = settings.LABELLOOP_SEMI_SUPERVISED_POOL
        unlabeled = unlabeled_sample(project, size=size, seed=run.pk)
    return Snapshot(
        items=[r for r, _ in train],
        labels=[y for _, y in train],
        val_items=[r for r, _ in val],
        val_labels=[y for _, y in val],
        val_source=source,
        total=len(rows),
        classes=classes,
        renames=renames,
        unlabeled_items=unlabeled,
    )


def unlabeled_sample(project: Project, *, size: int, seed: int) -> list:
    """``ImageRef``s of up to ``size`` images waiting for labels, drawn uniformly and the same
    for the same ``seed`` (a run's id): the images after a point drawn from the seed on their
    random keys, wrapping around to the start (the ``image_explore`` index serves both reads,
    so a million-image pool costs ``size`` rows, not a scan)."""
    start = random.Random(seed).random()
    pool = Image.objects.filter(project=project, status__in=QUEUE_STATUSES)
    columns = ("id", "sha256", "storage_key")
    after = pool.filter(random_key__gte=start).order_by("random_key").values_list(*columns)
    rows = list(after[:size])
    if len(rows) < size:
        before = pool.filter(random_key__lt=start).order_by("random_key").values_list(*columns)
        rows += list(before[: size - len(rows)])
    return image_refs(rows)


AFFINE = ("augment_rotate", "augment_scale", "augment_shear")  # TrainConfig's affine warp


def train_config():
    """The worker's TrainConfig: the engine's recipe, with the deployment's settings."""
    off = {} if settings.LABELLOOP_TRAIN_AFFINE else dict.fromkeys(AFFINE, 0.0)
    return TrainConfig(
        num_threads=settings.LABELLOOP_TRAIN_THREADS,
        min_steps=settings.LABELLOOP_TRAIN_MIN_STEPS,
        **off,
    )
