"""A round on a backbone: a logistic-regression head on frozen features (`training.head`),
measured on the round's validation labels, then saved with the backbone as one checkpoint
that `training.models.load_checkpoint` reads like any other model.

    .venv/bin/python -m pytest tests/training/test_rounds.py -p no:django -q

Without validation labels a stratified share is held out to measure, and the head that ships
is fitted again on every label (as `training.train` does under a fixed step budget).
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from training.backbones import load_backbone
from training.batches import stratified_split
from training.contracts import HEAD_FIT, TrainResult
from training.head import fit_head, head_probabilities
from training.metrics import classification_metrics
from training.models import (
    BACKBONE_CLASSIFIER,
    checkpoint_meta,
    classifier_from_backbone,
    save_checkpoint,
)


def head_round(
    *,
    backbone_path: str,
    classes: Sequence[str],
    input_size: int,
    input_channels: int,
    x: np.ndarray,
    y: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    checkpoint_path: str,
    seed: int,
    val_fraction: float = 0.1,
) -> TrainResult:
    """Fit, measure and save. ``x``/``x_val``: (N, D) backbone features of the labeled
    images; ``y``/``y_val``: their class indices into ``classes``."""
    start = time.perf_counter()
    classes = tuple(classes)
    if len(x) == 0:
        raise ValueError("no labeled images to fit a head on")
    refit = x_val is None or len(x_val) == 0
    x_fit, y_fit = x, y
    if refit:
        train, val = stratified_split(y, val_fraction, seed)
        x_fit, y_fit, x_val, y_val = x[train], y[train], x[val], y[val]
    head = fit_head(x_fit, y_fit, len(classes), seed=seed)
    metrics = classification_metrics(y_val, head_probabilities(head, x_val), classes)
    metrics |= {"n_train": len(y_fit), "n_val": len(y_val), "epochs_run": 0}
    if refit and len(y_val):
        head = fit_head(x, y, len(classes), seed=seed)
        metrics |= {"refit_on_all": True, "n_train": len(y)}
    backbone, info = load_backbone(backbone_path)
    model = classifier_from_backbone(
        backbone,
        info,
        classes=classes,
        head_weight=head.fc.weight.detach(),
        head_bias=head.fc.bias.detach(),
        unit_features=True,  # fit_head fits on L2-normalised features
    )
    metrics |= {
        "seconds": round(time.perf_counter() - start, 3),
        "device": "cpu",
        "trained": HEAD_FIT,
        "failed": 0,
    }
    meta = checkpoint_meta(
        model,
        arch=BACKBONE_CLASSIFIER,
        classes=classes,
        input_size=input_size,
        input_channels=input_channels,
        dropout=0.0,
        metrics=metrics,
        seed=seed,
    )
    save_checkpoint(checkpoint_path, model, meta)
    return TrainResult(checkpoint_path, metrics)
