"""Classification metrics on numpy arrays: accuracy, per-class precision/recall/F1, the
confusion matrix, expected calibration error and log loss; the interval an accuracy measured
on few images deserves.

    .venv/bin/python -m pytest tests/training/test_train.py -q -k metrics
"""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15  # equal-width confidence bins, the usual choice (Guo et al. 2017)


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over confidence bins of |accuracy - confidence|, weighted by the bin's share."""
    if len(y) == 0:
        return 0.0
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    which = np.minimum((conf * bins).astype(np.int64), bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return float(ece)


def accuracy_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for the default z) of an accuracy of ``correct`` out of
    ``n``: honest at 5 of 5, where the normal approximation says "100% +- 0". Scipy's
    ``binomtest(...).proportion_ci(method="wilson")`` gives the same; this keeps scipy out of
    the web process, which reports it."""
    if n <= 0 or not 0 <= correct <= n:
        raise ValueError(f"an accuracy needs 0 <= correct <= n and n > 0, got {correct} of {n}")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def classification_metrics(y: np.ndarray, probs: np.ndarray, classes: tuple[str, ...]) -> dict:
    """accuracy, per-class precision/recall/F1/support, confusion (rows = true, in the order
    of `classes`, which comes along: JSONB keeps no key order), ece, loss."""
    k = len(classes)
    pred = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    confusion = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    per_class = {}
    for c, name in enumerate(classes):
        tp = confusion[c, c]
        precision = tp / confusion[:, c].sum() if confusion[:, c].sum() else 0.0
        recall = tp / confusion[c].sum() if confusion[c].sum() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(confusion[c].sum()),
        }
    eps = 1e-12  # log(0) guard for a confidently wrong prediction
    loss = float(-np.log(probs[np.arange(len(y)), y] + eps).mean()) if len(y) else 0.0
    return {
        "accuracy": float((pred == y).mean()) if len(y) else 0.0,
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "classes": list(classes),
        "ece": expected_calibration_error(y, probs),
        "loss": loss,
    }


def promotion_verdict(
    truth: np.ndarray,
    active_pred: np.ndarray,
    new_pred: np.ndarray,
    *,
    tolerance: float = 0.0,
    alpha: float = 0.05,
) -> dict:
    """Should a new model replace the active one? Both predicted the same validation labels.

    The new model is kept out only when it is worse by more than `tolerance` (accuracy, 0..1)
    *and* the loss is significant: an exact one-sided sign test (McNemar's) on the items
    exactly one of the two gets right, p < `alpha`. On the 30-100 labels of a young project's
    random slice one image is 1-3 accuracy points, so "any loss" (alpha = 1) keeps a model
    that won by chance and freezes the loop, while a model that is really worse still loses.
    """
    from scipy.stats import binomtest  # the worker's path only; the web process never needs it

    active_ok = np.asarray(active_pred) == np.asarray(truth)
    new_ok = np.asarray(new_pred) == np.asarray(truth)
    n = max(len(truth), 1)
    lost = int((active_ok & ~new_ok).sum())  # the active model right, the new one wrong
    gained = int((~active_ok & new_ok).sum())
    active_acc, new_acc = float(active_ok.sum() / n), float(new_ok.sum() / n)
    p_value = binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue if lost else 1.0
    return {
        "promote": bool(new_acc >= active_acc - tolerance or p_value >= alpha),
        "active_accuracy": round(active_acc, 6),
        "new_accuracy": round(new_acc, 6),
        "lost": lost,
        "gained": gained,
        "p_value": round(float(p_value), 6),
    }
