"""A round's shortcut check (``training.explain.shortcut_check``), between its evaluate and
register stages, so the version is registered with it in its metrics
(``metrics["shortcut_check"]``) and the dashboard's model tab shows it.

It looks at the round's own labeled images (training and validation): per class, up to
``CANDIDATES_PER_CLASS`` of them (a seeded sample) are scored, and the
``training.explain.SUREST_PER_CLASS`` the model is surest of are explained. A few hundred
forward passes and a few dozen backward ones, in the worker's process: under a second for
the seed CNN, seconds for a ResNet on photos.
"""

from __future__ import annotations

import numpy as np

from labeling.learning.snapshot import Snapshot
from training.contracts import TrainSpec
from training.data import load_items
from training.explain import shortcut_check
from training.models import load_checkpoint

CANDIDATES_PER_CLASS = 32  # labeled images per class the model scores to find its surest


def shortcut_check_round(spec: TrainSpec, snap: Snapshot, checkpoint: str) -> dict:
    """The check's report for the model at ``checkpoint`` on the round's labels (plain JSON:
    band, threshold, per class the images explained, median border share, flagged)."""
    items = [*snap.items, *snap.val_items]
    labels = np.array([*snap.labels, *snap.val_labels], dtype=np.int64)
    rng = np.random.default_rng(spec.seed)
    chosen = np.concatenate(
        [
            rng.permutation(np.flatnonzero(labels == c))[:CANDIDATES_PER_CLASS]
            for c in range(len(spec.classes))
        ]
    ).astype(np.int64)
    x, kept, _failed = load_items(
        [items[i] for i in chosen],
        cache_dir=spec.cache_dir,
        size=spec.input_size,
        channels=spec.input_channels,
    )
    model, meta = load_checkpoint(checkpoint)
    return shortcut_check(model, x, labels[chosen][kept], list(meta["classes"]))
