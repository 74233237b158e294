"""Suspect labels: which labels are most likely wrong, by confident learning over out-of-sample
predicted probabilities.

    .venv/bin/python -m pytest tests/training/test_suspects.py -q

Every labeled item gets a predicted probability from a model that never saw it: stratified
k-fold cross-fitting (`fold_assignment`, seeded), each fold's model fitted on the others.
cleanlab then ranks the labels (`rank_suspects`): `cleanlab.filter.find_label_issues` flags
the ones confident learning calls wrong (ranked by self-confidence) and
`cleanlab.rank.get_label_quality_scores` scores every label; a suspect's score is
1 - label quality, so the queue's order is "most likely wrong first". Nothing of cleanlab is
rewritten here.

Two ways to get the probabilities:

- `check_features`: a backbone's stored embeddings; each fold fits `training.head.fit_head`
  (L-BFGS logistic regression): seconds for thousands of labels, 100k labels at D=128 in
  about a minute on two cores (docs/benchmarks.md, "Suspect labels (issue 27)").
- No backbone, images only: the project's seed CNN trained per fold for a bounded number of
  steps (`CheckConfig.cnn_steps`, `cnn_epochs`, `cnn_max_steps`): `check_arrays` in
  memory, `training.label_check.run_label_check` on Ray (one task per fold, the array cache
  as for a round).
  Chosen by measurement over a cheaper model on the pixels (`check_features` on
  `pixel_features`: random ReLU features of the pixels with the same head): on MNIST, 1,000
  labels with 10% flipped, the pixel model's top-10% precision was 0.79-0.84 (below the 0.85
  the product asks), the CNN's 0.95 at 200 steps a fold, about 27 s per 1,000 labels on the
  2-core dev box.

Items of a class with a single label are never held out (their fold would train without the
class, and the label would look wrong for want of any example): they train every fold and are
not checked. Folds are dealt round-robin within each class, so a class with fewer items than
folds still has one of its items in each training set that holds one out.

Progress is reported and cancellation (`should_stop`) honoured at fold boundaries (and, on
Ray, while a fold trains: its task is cancelled).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

from training.contracts import TrainConfig
from training.head import fit_head, head_probabilities
from training.inference import predict_probabilities
from training.progress import Progress
from training.train import fit

METHODS = ("backbone-head", "seed-cnn", "pixels-head")

# (train positions, test positions) -> (len(test), C) probabilities of the test items.
FitPredict = Callable[[np.ndarray, np.ndarray], np.ndarray]
ShouldStop = Callable[[], bool]


@dataclass(frozen=True)
class CheckConfig:
    """How a label check cross-fits. The defaults are the measured ones (module docstring)."""

    folds: int = 5  # k: each model trains on (k-1)/k of the labels; 5 is cleanlab's default
    seed: int = 0  # fold assignment and model initialisation
    # Seed CNN per fold: max(cnn_steps, cnn_epochs passes) optimizer steps, at most
    # cnn_max_steps. 200 steps (batch 32) gave 0.95 top-10% precision on 1,000 MNIST labels
    # (5 s a fold on 2 cores); passes keep large label sets from seeing a sliver of their
    # data, and the cap bounds a fold at about a minute on 2 cores.
    cnn_steps: int = 200
    cnn_epochs: float = 2.0
    cnn_max_steps: int = 3000
    # The seed CNN's recipe (augmentation, threads, GPU); its step fields are set per fold.
    train: TrainConfig = field(default_factory=TrainConfig)
    # cleanlab's filter: "prune_by_noise_rate" (its default) flags, per off-diagonal cell of
    # the confident joint, the items with the largest margin of that class over the given one.
    filter_by: str = "prune_by_noise_rate"


@dataclass(frozen=True)
class Suspect:
    """A label cleanlab flags as likely wrong."""

    index: int  # position in the caller's labels
    score: float  # 1 - cleanlab's label quality: 0..1, higher = more likely wrong
    given: int  # the label as given (class index)
    predicted: int  # the cross-fitted model's class
    probability: float  # its out-of-sample probability of `predicted`


@dataclass(frozen=True, eq=False)
class CheckResult:
    suspects: tuple[Suspect, ...]  # the flagged labels, most likely wrong first
    scores: np.ndarray  # (N,) 1 - label quality; 0 where not checked
    probabilities: np.ndarray  # (N, C) out-of-sample; the training fit for unchecked items
    checked: np.ndarray  # (N,) bool: held out in some fold and ranked
    folds: int  # folds actually used
    method: str  # one of METHODS
    seconds: float
    stopped: bool = False  # should_stop() said so before the last fold: nothing ranked
    failed_items: tuple[str, ...] = ()  # run_label_check: keys of images it could not read

    def ranking(self) -> np.ndarray:
        """Positions of the checked items, most likely wrong first (ties by position)."""
        idx = np.flatnonzero(self.checked)
        return idx[np.argsort(-self.scores[idx], kind="stable")]


def fold_assignment(labels: np.ndarray, folds: int, seed: int) -> tuple[np.ndarray, int]:
    """(fold per item, folds used). -1: never held out (its class has a single label).
    Each class's items, shuffled, are dealt round-robin, continuing across classes, so every
    fold gets its share of every class. Folds used: `folds`, or fewer when fewer items can be
    held out."""
    if folds < 2:
        raise ValueError(f"folds must be >= 2, got {folds}")
    y = np.asarray(labels)
    fold = np.full(len(y), -1, dtype=np.int64)
    classes, counts = np.unique(y, return_counts=True)
    held = int(counts[counts >= 2].sum())
    nfold = min(folds, held)
    if nfold < 2:
        return fold, 0
    rng = np.random.default_rng(seed)
    at = 0
    for c in classes[counts >= 2]:
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = (at + np.arange(len(idx))) % nfold
        at += len(idx)
    return fold, nfold


def crossfit(
    fit_predict: FitPredict,
    labels: np.ndarray,
    num_classes: int,
    *,
    folds: int,
    seed: int,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> tuple[np.ndarray, np.ndarray, int, bool]:
    """Out-of-sample probabilities by k-fold: (probabilities (N, C), checked, folds, stopped)."""
    y = np.asarray(labels)
    fold, nfold = fold_assignment(y, folds, seed)
    probs = np.zeros((len(y), num_classes), dtype=np.float32)
    everyone = np.arange(len(y))
    for f in range(nfold):
        if should_stop is not None and should_stop():
            return probs, fold >= 0, nfold, True
        test = np.flatnonzero(fold == f)
        probs[test] = fit_predict(everyone[fold != f], test)
        if progress:
            progress("crossfit", (f + 1) / nfold)
    return probs, fold >= 0, nfold, False


def rank_suspects(
    labels: np.ndarray,
    probabilities: np.ndarray,
    checked: np.ndarray | None = None,
    *,
    filter_by: str = "prune_by_noise_rate",
) -> tuple[tuple[Suspect, ...], np.ndarray]:
    """cleanlab over out-of-sample probabilities: (flagged suspects, most likely wrong first;
    score per item = 1 - label quality, 0 where not checked)."""
    y = np.asarray(labels).astype(np.int64)
    p = np.asarray(probabilities, dtype=np.float64)
    checked = np.ones(len(y), dtype=bool) if checked is None else np.asarray(checked, dtype=bool)
    scores = np.zeros(len(y), dtype=np.float64)
    idx = np.flatnonzero(checked)
    if len(np.unique(y[idx])) < 2:
        return (), scores  # one class: nothing to mistake it for
    # cleanlab wants rows that sum to 1; a fold's softmax does up to float error.
    pc = p[idx] / np.clip(p[idx].sum(axis=1, keepdims=True), 1e-12, None)
    with warnings.catch_warnings():
        # "too few examples in class k": expected of small label sets, said per call.
        warnings.simplefilter("ignore", UserWarning)
        quality = get_label_quality_scores(y[idx], pc, method="self_confidence")
        flagged = find_label_issues(
            y[idx],
            pc,
            filter_by=filter_by,
            return_indices_ranked_by="self_confidence",
            n_jobs=1,  # no process pool inside a worker (and nothing to gain on small sets)
        )
    scores[idx] = 1.0 - quality
    suspects = tuple(
        Suspect(
            index=int(idx[j]),
            score=float(np.clip(1.0 - quality[j], 0.0, 1.0)),
            given=int(y[idx[j]]),
            predicted=int(pc[j].argmax()),
            probability=float(pc[j].max()),
        )
        for j in np.asarray(flagged, dtype=np.int64)
    )
    return suspects, scores


def result_of(
    labels: np.ndarray,
    probs: np.ndarray,
    checked: np.ndarray,
    nfold: int,
    stopped: bool,
    *,
    method: str,
    config: CheckConfig,
    started: float,
    failed: Sequence[str] = (),
) -> CheckResult:
    """The cross-fit's outcome, ranked by cleanlab (nothing ranked when it was stopped)."""
    if stopped or nfold == 0:
        suspects, scores = (), np.zeros(len(labels))
        checked = np.zeros_like(checked) if stopped else checked
    else:
        suspects, scores = rank_suspects(labels, probs, checked, filter_by=config.filter_by)
    return CheckResult(
        suspects=suspects,
        scores=scores,
        probabilities=probs,
        checked=checked,
        folds=nfold,
        method=method,
        seconds=time.perf_counter() - started,
        stopped=stopped,
        failed_items=tuple(failed),
    )


def check_features(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    config: CheckConfig = CheckConfig(),
    method: str = "backbone-head",
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> CheckResult:
    """Suspects from (N, D) features (a backbone's embeddings): k-fold of `fit_head`."""
    started = time.perf_counter()
    x = np.asarray(features, dtype=np.float32)
    y = np.asarray(labels).astype(np.int64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"features must be (N, D) with N = {len(y)} labels, got {x.shape}")

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        head = fit_head(x[train], y[train], num_classes, seed=config.seed)
        return head_probabilities(head, x[test])

    probs, checked, nfold, stopped = crossfit(
        fit_predict, y, num_classes, folds=config.folds, seed=config.seed,
        progress=progress, should_stop=should_stop,
    )  # fmt: skip
    return result_of(y, probs, checked, nfold, stopped, method=method, config=config,
                   started=started)  # fmt: skip


def pixel_features(x: np.ndarray, *, dim: int = 2000, seed: int = 0) -> np.ndarray:
    """The cheap alternative to a CNN measured for images without a backbone: random ReLU
    features of the pixels in 0..1 (a fixed Gaussian projection, `dim` units). Kept to rerun
    the comparison (bench/suspects.py); the product uses the seed CNN."""
    flat = np.asarray(x, dtype=np.float32).reshape(len(x), -1) / 255.0
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 1.0 / math.sqrt(flat.shape[1]), (flat.shape[1], dim)).astype(np.float32)
    return np.maximum(flat @ w, 0.0)


def cnn_steps(n_train: int, config: CheckConfig) -> int:
    """Optimizer steps of one fold's seed CNN on `n_train` labels (see CheckConfig)."""
    passes = math.ceil(config.cnn_epochs * n_train / config.train.batch_size)
    return int(min(config.cnn_max_steps, max(config.cnn_steps, passes)))


def _fold_config(n_train: int, config: CheckConfig) -> TrainConfig:
    # Exactly this many steps, no early stopping (no validation set: every label is needed).
    return replace(config.train, max_steps=cnn_steps(n_train, config), min_steps=0)


def fit_fold(
    x: np.ndarray,
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    classes: tuple[str, ...],
    config: CheckConfig,
    fold_seed: int,
    device: torch.device | None = None,
    progress: Progress | None = None,
) -> np.ndarray:
    model, _ = fit(
        x[train],
        y[train],
        classes=classes,
        config=_fold_config(len(train), config),
        seed=fold_seed,
        device=device,
        progress=progress,
    )
    return predict_probabilities(model, x[test])


def check_arrays(
    x: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    *,
    config: CheckConfig = CheckConfig(),
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> CheckResult:
    """Suspects from uint8 images (N, C, H, W) in memory: k-fold of the seed CNN, in this
    process (simulations, tests). The product runs the same on Ray:
    `training.label_check.run_label_check`."""
    started = time.perf_counter()
    y = np.asarray(labels).astype(np.int64)
    names = tuple(classes)
    fold_no = iter(range(config.folds))

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        return fit_fold(x, y, train, test, classes=names, config=config,
                         fold_seed=config.seed + next(fold_no))  # fmt: skip

    probs, checked, nfold, stopped = crossfit(
        fit_predict, y, len(names), folds=config.folds, seed=config.seed,
        progress=progress, should_stop=should_stop,
    )  # fmt: skip
    return result_of(y, probs, checked, nfold, stopped, method="seed-cnn", config=config,
                   started=started)  # fmt: skip
