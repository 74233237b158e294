"""A round on a backbone: the head is fitted on the stored frozen features of the labeled images
(seconds, not the minutes a CNN from scratch takes), and the model it makes - backbone plus
head, one checkpoint - is evaluated, registered and scores the pool like any other.

Images labeled since the backbone embedded the pool (uploaded later) are embedded here first
and their embeddings kept.

    .venv/bin/python -m pytest tests/labeling/learning/test_backbones.py -q
"""

from __future__ import annotations

import numpy as np

from labeling.learning.backbones import embeddings_read, embeddings_write
from labeling.learning.jobs.base import Job
from labeling.learning.models import Backbone
from labeling.learning.snapshot import Snapshot
from labeling.learning.writeback import cache_dir, local_path
from training.contracts import EmbedSpec, TrainResult, TrainSpec
from training.embed import run_embedding
from training.rounds import head_round


def features_for(job: Job, backbone: Backbone, items: list) -> np.ndarray:
    """(N, D) float32 features of ``items`` from ``backbone``: stored ones, the rest embedded
    now (and stored). Items that cannot be decoded get zeros (they are listed as failed by
    the scoring that follows, as in a round from scratch)."""
    stored = embeddings_read(backbone, [int(item.key) for item in items])
    missing = tuple(item for item in items if int(item.key) not in stored)
    if missing:
        embedded = run_embedding(
            EmbedSpec(
                backbone_path=local_path(backbone.file_key),
                items=missing,
                cache_dir=str(cache_dir()),
                input_size=job.project.input_size,
                input_channels=job.project.input_channels,
            )
        )
        embeddings_write(backbone, embedded.keys, embedded.embeddings)
        stored.update({int(k): v for k, v in zip(embedded.keys, embedded.embeddings, strict=True)})
    zeros = np.zeros(backbone.embed_dim, dtype=np.float16)
    return np.stack([stored.get(int(item.key), zeros) for item in items]).astype(np.float32)


def train_head(job: Job, backbone: Backbone, snap: Snapshot, spec: TrainSpec) -> TrainResult:
    """The round's model: a head on ``backbone``'s features of the snapshot's labels."""
    x = job.stage("embed", lambda: features_for(job, backbone, snap.items))
    x_val = features_for(job, backbone, snap.val_items) if snap.val_items else None
    return job.stage(
        "train",
        lambda: head_round(
            backbone_path=local_path(backbone.file_key),
            classes=spec.classes,
            input_size=spec.input_size,
            input_channels=spec.input_channels,
            x=x,
            y=np.array(snap.labels, dtype=np.int64),
            x_val=x_val,
            y_val=np.array(snap.val_labels, dtype=np.int64) if snap.val_items else None,
            checkpoint_path=spec.checkpoint_path,
            seed=spec.seed,
            val_fraction=spec.config.val_fraction,
        ),
    )
