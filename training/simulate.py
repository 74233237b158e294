"""Active-learning simulation on arrays in memory: an oracle answers from known labels.

    .venv/bin/python -m pytest tests/training/test_simulation.py -p no:django -q -s

Each round trains from scratch on the labels so far (`train.fit`), measures accuracy on a
clean test set, scores the unlabeled pool in-process (`score.score_arrays`, no Ray: at this
size the actor start-up would cost more than the inference) and acquires the next batch with
`acquisition.select` - the same functions the Ray entry points run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from training.acquisition import coverage_order, select, thumbnails
from training.contracts import TrainConfig
from training.inference import evaluate
from training.score import score_arrays
from training.train import fit

# The protocol of Gal, Islam & Ghahramani (2017), whose MNIST curves are the usual yardstick:
# 20 initial labels, retrain from scratch every round, no augmentation. Training is a fixed
# 150 steps of 32: a 20-label round is one batch, so epochs mean nothing there, and a fixed
# budget trains every strategy's rounds equally. No validation split: it would eat the labels.
SIM_CONFIG = TrainConfig(
    max_steps=150,
    batch_size=32,
    val_fraction=0.0,
    augment_shift=0,
    augment_rotate=0.0,
    augment_scale=0.0,
    augment_shear=0.0,
    num_threads=1,
)


@dataclass
class Curve:
    strategy: str
    seed: int
    labels: list[int] = field(default_factory=list)  # labeled-set size at each round
    accuracy: list[float] = field(default_factory=list)  # clean test accuracy at that size
    acquired: list[int] = field(default_factory=list)  # pool positions, in acquisition order

    def labels_to_reach(self, target: float) -> int | None:
        """Labels at the first round whose accuracy is >= target; None if never reached."""
        for n, acc in zip(self.labels, self.accuracy, strict=True):
            if acc >= target:
                return n
        return None


def initial_labels(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` random pool positions of each class: the labels a project starts with."""
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(y == c), per_class, replace=False) for c in np.unique(y)]
    return np.sort(np.concatenate(picks))


def first_labels(
    x: np.ndarray, y: np.ndarray, *, strategy: str, start: str, per_class: int, seed: int
) -> np.ndarray:
    """Pool positions of the first labels, `per_class` x classes of them.

    "balanced": that many of each class (Gal et al.'s start: it needs the labels it is about
    to collect). "queue": what the product's queue serves an empty project - the cold-start
    coverage order (`acquisition.coverage_order` on thumbnails) for a model-driven strategy,
    random order for `random`.
    """
    if start == "balanced":
        return initial_labels(y, per_class, seed)
    if start != "queue":
        raise ValueError(f"unknown start {start!r}; use 'balanced' or 'queue'")
    n = per_class * len(np.unique(y))
    if strategy == "random":
        return np.sort(np.random.default_rng(seed).permutation(len(y))[:n])
    return np.sort(coverage_order(thumbnails(x), limit=n, seed=seed)[:n])


def simulate(
    pool_x: np.ndarray,
    pool_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    *,
    classes: tuple[str, ...],
    strategy: str,
    seed: int,
    initial_per_class: int = 2,
    acquire: int = 25,
    max_labels: int = 500,
    target: float | None = 0.9,
    exploration_fraction: float = 0.0,
    config: TrainConfig = SIM_CONFIG,
    arch: str = "seed_cnn",
    start: str = "balanced",
) -> Curve:
    """Run rounds until `target` accuracy (if given) or `max_labels`; returns the curve.

    `pool_y` is what the oracle answers, junk included; `first_labels(start=...)` picks the
    first `initial_per_class` x classes labels.
    """
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    labeled = np.zeros(len(pool_y), dtype=bool)
    labeled[
        first_labels(
            pool_x, pool_y, strategy=strategy, start=start, per_class=initial_per_class, seed=seed
        )
    ] = True
    keys = [str(i) for i in range(len(pool_y))]
    curve = Curve(strategy, seed)
    for round_ in range(10_000):
        idx = np.flatnonzero(labeled)
        model, _ = fit(
            pool_x[idx], pool_y[idx], classes=classes, arch=arch, config=config, seed=seed
        )
        acc = evaluate(model, test_x, test_y, classes)["accuracy"]
        curve.labels.append(len(idx))
        curve.accuracy.append(acc)
        if (target is not None and acc >= target) or len(idx) >= max_labels:
            return curve
        rest = np.flatnonzero(~labeled)
        if strategy == "random":  # needs no model output; skipping the pass halves its rounds
            out = {"scores": np.zeros(len(rest)), "embeddings": None}
        else:
            out = score_arrays(
                model, pool_x[rest], strategy=strategy, keys=[keys[i] for i in rest], seed=seed
            )
        labeled_emb = None
        if strategy == "diverse":  # what is labeled already counts as covered
            labeled_emb = score_arrays(model, pool_x[idx], strategy="margin")["embeddings"]
        pick = select(
            out["scores"],
            min(acquire, max_labels - len(idx)),
            strategy=strategy,
            embeddings=out["embeddings"],
            exploration_fraction=exploration_fraction,
            seed=seed * 100_003 + round_,
            labeled_embeddings=labeled_emb,
        )
        labeled[rest[pick]] = True
        curve.acquired.extend(rest[pick].tolist())
    return curve


JUNK_KINDS = ("noise", "blank", "inverted", "cut_off")


def dirty_pool(
    x: np.ndarray, y: np.ndarray, *, fraction: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Replace `fraction` of a uint8 pool by junk, in equal shares of JUNK_KINDS.

    What the oracle answers for junk: noise and blank frames get a random class (there is no
    right answer), inverted and cut-off digits keep their digit's class (the nearest one).
    Returns (x, y, kind) with kind = -1 for clean items, else an index into JUNK_KINDS.
    """
    rng = np.random.default_rng(seed)
    x, y = x.copy(), y.copy()
    n_classes = int(y.max()) + 1
    junk = rng.choice(len(y), size=round(len(y) * fraction), replace=False)
    kind = np.full(len(y), -1, dtype=np.int64)
    kind[junk] = np.arange(len(junk)) % len(JUNK_KINDS)
    h = x.shape[2]
    for i in junk:
        name = JUNK_KINDS[kind[i]]
        if name == "noise":
            x[i] = rng.integers(0, 256, size=x[i].shape, dtype=np.uint8)
            y[i] = rng.integers(n_classes)
        elif name == "blank":
            x[i] = 0
            y[i] = rng.integers(n_classes)
        elif name == "inverted":
            x[i] = 255 - x[i]
        else:  # cut_off: only the top or bottom third of the digit survives
            keep = rng.integers(2)
            if keep:
                x[i, :, h // 3 :] = 0
            else:
                x[i, :, : 2 * h // 3] = 0
    return x, y, kind
