"""A round on a backbone: the head is fitted on the stored frozen features of the labeled images
(seconds, not the minutes a CNN from scratch takes), and the model it makes - backbone plus
head, one checkpoint - is evaluated and registered like any other, and scores the pool from
the stored features too (``jobs/scoring.py``).

Images labeled since the backbone embedded the pool (uploaded later) are embedded here first
and their embeddings kept. The round also scores the backbone again on its labels (k-NN and
linear probe, ``training.head.probe``): the backbone's ``metrics["probe"]`` then says how
well it separates the classes labeled so far, not only those labeled when it was registered.

    .venv/bin/python -m pytest tests/labeling/learning/test_score_embeddings.py -q
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from labeling.learning.backbones import embeddings_read, embeddings_write
from labeling.learning.jobs.base import Job, Progress
from labeling.learning.models import Backbone, ModelVersion
from labeling.learning.snapshot import Snapshot
from labeling.learning.writeback import cache_dir, local_path
from training.contracts import EmbedSpec, TrainResult, TrainSpec
from training.embed import run_embedding
from training.head import probe
from training.rounds import head_round


def embeddings_for(
    job: Job, backbone: Backbone, items: Sequence, *, progress: Progress | None = None
) -> tuple[dict[int, np.ndarray], tuple[str, ...]]:
    """(image id -> float16 vector from ``backbone``, keys that could not be read): the stored
    vectors, and the missing ones embedded now and stored. The ResNet runs only over the
    images without a stored vector."""
    stored = embeddings_read(backbone, [int(item.key) for item in items])
    missing = tuple(item for item in items if int(item.key) not in stored)
    if not missing:
        return stored, ()
    embedded = run_embedding(
        EmbedSpec(
            backbone_path=local_path(backbone.file_key),
            items=missing,
            cache_dir=str(cache_dir()),
            input_size=job.project.input_size,
            input_channels=job.project.input_channels,
        ),
        progress=progress,
    )
    embeddings_write(backbone, embedded.keys, embedded.embeddings)
    stored.update({int(k): v for k, v in zip(embedded.keys, embedded.embeddings, strict=True)})
    return stored, tuple(embedded.failed_items)


def features_for(job: Job, backbone: Backbone, items: list) -> np.ndarray:
    """(N, D) float32 features of ``items`` from ``backbone`` (``embeddings_for``). Items that
    cannot be decoded get zeros (they are listed as failed by the scoring that follows, as in
    a round from scratch)."""
    stored, _ = embeddings_for(job, backbone, items)
    zeros = np.zeros(backbone.embed_dim, dtype=np.float16)
    return np.stack([stored.get(int(item.key), zeros) for item in items]).astype(np.float32)


def train_head(job: Job, backbone: Backbone, snap: Snapshot, spec: TrainSpec) -> TrainResult:
    """The round's model: a head on ``backbone``'s features of the snapshot's labels. Its
    metrics carry the backbone's probe on every label of the round (``probe``), which the
    write-back stores on the backbone (``backbone_probe_record``)."""
    x = job.stage("embed", lambda: features_for(job, backbone, snap.items))
    x_val = features_for(job, backbone, snap.val_items) if snap.val_items else None
    y = np.array(snap.labels, dtype=np.int64)
    y_val = np.array(snap.val_labels, dtype=np.int64) if snap.val_items else None

    def fit() -> TrainResult:
        result = head_round(
            backbone_path=local_path(backbone.file_key),
            classes=spec.classes,
            input_size=spec.input_size,
            input_channels=spec.input_channels,
            x=x,
            y=y,
            x_val=x_val,
            y_val=y_val,
            checkpoint_path=spec.checkpoint_path,
            seed=spec.seed,
            val_fraction=spec.config.val_fraction,
        )
        # Every label of the round, training and validation alike: the probe cross-fits.
        everything = (
            (x, y) if x_val is None else (np.concatenate([x, x_val]), np.concatenate([y, y_val]))
        )
        scored = probe(*everything, seed=spec.seed)
        return replace(result, metrics=result.metrics | {"probe": scored})

    return job.stage("train", fit)


def backbone_probe_record(*, version: ModelVersion, metrics: dict) -> None:
    """Inside a round's write-back: the probe the round measured (``metrics["probe"]``)
    becomes its backbone's ``metrics["probe"]``, with ``probe_labels`` (how many labels it
    was computed on) and ``probe_run``; the one measured at registration is kept as
    ``probe_at_registration``. A resumed older round never replaces a newer round's probe."""
    measured = metrics.get("probe")
    if version.backbone_id is None or not isinstance(measured, dict):
        return
    backbone = Backbone.objects.select_for_update().filter(pk=version.backbone_id).first()
    if backbone is None:  # deleted with its project meanwhile
        return
    kept = dict(backbone.metrics or {})
    if kept.get("probe_run") is not None and kept["probe_run"] > version.run_id:
        return
    if "probe_at_registration" not in kept:
        kept["probe_at_registration"] = kept.get("probe")
    kept |= {
        "probe": measured,
        "probe_labels": measured.get("labels"),
        "probe_run": version.run_id,
        "probe_version": version.number,
    }
    backbone.metrics = kept
    backbone.save(update_fields=["metrics"])
