"""A label check on Ray: the product path for images without a backbone (`training.suspects`
says how suspects are found and why the seed CNN).

    .venv/bin/python -m pytest tests/labeling/learning/test_label_check.py -q

`run_label_check(spec)` fills the array cache, then cross-fits the seed CNN with one Ray task
per fold (a GPU when the cluster has one); the driver relays each fold's progress and, when
`should_stop()` says so, cancels the fold in flight. cleanlab ranks the result as
`training.suspects.check_features` does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np
import ray
import torch

from training.cluster import cluster_gpus, ensure_ray, fill_cache, largest_node_cpus
from training.contracts import ImageRef
from training.data import ArrayCache
from training.inference import pick_device
from training.progress import RELAY_EVERY_S, Progress, board_beside_the_driver, relay, settle
from training.suspects import (
    CheckConfig,
    CheckResult,
    ShouldStop,
    crossfit,
    fit_fold,
    fold_assignment,
    result_of,
)


@dataclass(frozen=True)
class LabelCheckSpec:
    """A label check on images (no backbone): items and their labels, read from the array
    cache at the project's input shape."""

    classes: tuple[str, ...]
    items: tuple[ImageRef, ...]
    labels: tuple[int, ...]  # index into `classes`, one per item
    input_size: int
    input_channels: int
    cache_dir: str
    config: CheckConfig = field(default_factory=CheckConfig)


def fold_probabilities(
    spec: LabelCheckSpec,
    shas: list[str],
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    fold_seed: int,
    progress: Progress | None = None,
) -> np.ndarray:
    """One fold: train the seed CNN on the cached arrays of `train`, return the probabilities
    of `test` (positions into `shas` and `y`)."""
    cache = ArrayCache(spec.cache_dir, size=spec.input_size, channels=spec.input_channels)
    x = cache.get(shas)
    return fit_fold(
        x, y, train, test, classes=spec.classes, config=spec.config, fold_seed=fold_seed,
        device=pick_device(spec.config.train.use_gpu), progress=progress,
    )  # fmt: skip


@ray.remote
def fold_task(
    spec: LabelCheckSpec,
    shas: list[str],
    y: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    fold_seed: int,
    board: ray.actor.ActorHandle,
    threads: int,
) -> np.ndarray:
    """`fold_probabilities` as a Ray task (a GPU when the cluster has one)."""
    torch.set_num_threads(threads)

    def post(stage: str, fraction: float) -> None:
        board.post.remote("fold", fraction)

    probabilities = fold_probabilities(spec, shas, y, train, test, fold_seed, post)
    settle(board)
    return probabilities


def run_label_check(
    spec: LabelCheckSpec,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> CheckResult:
    """The seed-CNN check on Ray: fill the array cache, then one Ray task per fold (a GPU when
    the cluster has one). `progress` and `should_stop` are called here, in the driver; a
    stop cancels the fold in flight. Images that cannot be read are left out (`failed_items`;
    their positions are unchecked, score 0)."""
    started = time.perf_counter()
    if len(spec.items) != len(spec.labels):
        raise ValueError(f"{len(spec.items)} items but {len(spec.labels)} labels")
    ensure_ray()
    if progress:
        progress("cache", 0.0)
    _, failed = fill_cache(
        spec.items, cache_dir=spec.cache_dir, size=spec.input_size, channels=spec.input_channels
    )
    bad = set(failed)
    kept = np.array([i for i, it in enumerate(spec.items) if it.key not in bad], dtype=np.int64)
    y_all = np.asarray(spec.labels, dtype=np.int64)
    y = y_all[kept]
    shas = [spec.items[i].sha256 for i in kept]
    gpus = cluster_gpus() if spec.config.train.use_gpu is not False else 0
    threads = spec.config.train.num_threads or largest_node_cpus(with_gpu=bool(gpus))
    task = fold_task.options(num_cpus=threads, num_gpus=1 if gpus else 0)
    shas_ref = ray.put(shas)  # once, not once per fold
    fold_no = iter(range(spec.config.folds))
    _, folds = fold_assignment(y, spec.config.folds, spec.config.seed)
    stop = should_stop or (lambda: False)
    halted = False

    def fit_predict(train: np.ndarray, test: np.ndarray) -> np.ndarray:
        nonlocal halted
        f = next(fold_no)
        board = board_beside_the_driver()
        ref = task.remote(spec, shas_ref, y, train, test, spec.config.seed + f, board, threads)
        done = False
        try:
            last = None
            while not ray.wait([ref], timeout=RELAY_EVERY_S)[0]:
                last = relay(board, _within_fold(progress, f, folds), last)
                if stop():
                    halted = True
                    return np.zeros((len(test), len(spec.classes)), dtype=np.float32)
            out = ray.get(ref)
            done = True
            return out
        finally:
            if not done:
                # Stopped, or the driver failed: free the task's CPUs/GPU. Never a finished
                # task's: cancelling one as its reply lands trips a check inside Ray 2.x
                # ("Tried to complete task that was not pending") and kills the driver.
                ray.cancel(ref, force=True)
            ray.kill(board)

    probs, checked, nfold, stopped = crossfit(
        fit_predict, y, len(spec.classes), folds=spec.config.folds, seed=spec.config.seed,
        progress=progress, should_stop=lambda: halted or stop(),
    )  # fmt: skip
    stopped = stopped or halted
    # Back to the caller's positions: unreadable images unchecked.
    full = np.zeros((len(y_all), len(spec.classes)), dtype=np.float32)
    full[kept] = probs
    seen = np.zeros(len(y_all), dtype=bool)
    seen[kept] = checked
    out = result_of(y, probs, checked, nfold, stopped, method="seed-cnn", config=spec.config,
                  started=started, failed=failed)  # fmt: skip
    scores = np.zeros(len(y_all))
    scores[kept] = out.scores
    return replace(
        out,
        suspects=tuple(replace(s, index=int(kept[s.index])) for s in out.suspects),
        scores=scores,
        probabilities=full,
        checked=seen & ~np.bool_(stopped),
    )


def _within_fold(progress: Progress | None, fold: int, folds: int) -> Progress | None:
    """A fold task's own progress (0..1) as the cross-fit's."""
    if progress is None:
        return None
    return lambda _stage, fraction: progress("crossfit", (fold + fraction) / folds)
