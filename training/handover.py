"""Typicality-first picking while labels are few, then the default: the hand-over rule.

    .venv/bin/python -m pytest tests/training/test_handover.py -p no:django -q

`typiclust` is Hacohen et al. (2022), "Active Learning on a Budget": k-means of the pool's
embeddings (PCA to 50 dimensions) into labeled + batch clusters; each pick takes the most
typical image (inverse mean distance to its 20 nearest neighbours) of the largest cluster with
the fewest labels. The model's uncertainty plays no part, which is what a model trained on a
few dozen labels deserves, and what stops helping once it knows more (docs/benchmarks.md,
"Hand-over from typicality to the default").

`picker` is the measured hand-over: a round picks `typical` while the project has fewer than
`labels_per_class` labels per class, `uncertain` (the project's strategy, `acquisition.select`)
after. Labels per class is known before any model exists and costs nothing; of the thresholds
measured on MNIST-5k (3, 5, 8), 3 needed the fewest labels to 95%: one typical batch after the
cold start, then the default.
"""

from __future__ import annotations

import numpy as np

from training import acquisition

TYPICAL = "typical"
UNCERTAIN = "uncertain"
# Labels per class below which a round picks typical images (docs/benchmarks.md, "Hand-over
# from typicality to the default (issue 25)": the threshold of the fewest labels to 95%).
HANDOVER_LABELS_PER_CLASS = 3.0
PICK_NEIGHBOURS = 20  # TypiClust's density: mean distance to this many nearest in the cluster
PCA_DIM = 50
# The product's rounds cluster at most this many waiting images (a random sample) for a batch.
TYPICLUST_SAMPLE = 20_000


def picker(
    *, labels: int, classes: int, labels_per_class: float = HANDOVER_LABELS_PER_CLASS
) -> str:
    """`typical` while `labels` < `labels_per_class` x `classes`, else `uncertain`.

    Zero labels are typical (nothing to be uncertain with); a single-class project counts as
    two classes, since a classifier needs two to be uncertain between.
    """
    if labels < 0 or classes < 0:
        raise ValueError(f"labels and classes must be >= 0, got {labels} and {classes}")
    if labels_per_class < 0:
        raise ValueError(f"labels_per_class must be >= 0, got {labels_per_class}")
    return TYPICAL if labels < labels_per_class * max(classes, 2) else UNCERTAIN


def typiclust(
    embeddings: np.ndarray, labeled: np.ndarray | None, k: int, seed: int = 0
) -> np.ndarray:
    """Pool positions of `k` typical picks from clusters with the fewest labels, in order."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    n = len(embeddings)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    labeled = np.zeros((0, embeddings.shape[1])) if labeled is None else labeled
    points = acquisition.unit_rows(np.concatenate([embeddings, labeled]).astype(np.float32))
    dim = min(PCA_DIM, points.shape[1], len(points))
    z = PCA(n_components=dim, random_state=seed).fit_transform(points)
    clusters = min(len(labeled) + k, len(points))
    assign = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(z).labels_
    pool = assign[:n]
    covered = np.bincount(assign[n:], minlength=clusters)
    size = np.bincount(pool, minlength=clusters)
    picks: list[int] = []
    while len(picks) < k and size.any():
        open_ = np.flatnonzero(size > 0)
        c = open_[np.lexsort((-size[open_], covered[open_]))[0]]  # fewest labels, then largest
        members = np.setdiff1d(np.flatnonzero(pool == c), picks)
        if len(members) == 0:
            size[c] = 0
            continue
        d = np.sqrt(acquisition.squared_distances(z[members], z[members]))
        m = min(PICK_NEIGHBOURS, len(members) - 1)
        density = 1.0 / (np.sort(d, axis=1)[:, 1 : m + 1].mean(axis=1) + 1e-9) if m else d[:, 0]
        picks.append(int(members[np.argmax(density)]))
        covered[c] += 1
    return np.array(picks, dtype=np.int64)


def typiclust_select(
    scores: np.ndarray,
    k: int,
    *,
    strategy: str = "diverse",
    embeddings: np.ndarray | None = None,
    exploration_fraction: float = 0.0,
    seed: int = 0,
    labeled_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """`acquisition.select`'s signature: TypiClust picks and the same share of random ones."""
    if embeddings is None:
        raise ValueError("typicality-first selection needs embeddings")
    k = min(k, len(scores))
    rng = np.random.default_rng(seed)
    n_explore = round(k * exploration_fraction)
    picks = typiclust(embeddings, labeled_embeddings, k - n_explore, seed)
    rest = np.setdiff1d(np.arange(len(scores)), picks)
    return acquisition._interleave(picks, rng.choice(rest, size=n_explore, replace=False))


def handover_select(
    scores: np.ndarray,
    k: int,
    *,
    labels: int,
    classes: int,
    labels_per_class: float = HANDOVER_LABELS_PER_CLASS,
    **select_kwargs,
) -> tuple[np.ndarray, str]:
    """One batch picked by whichever rule `picker` names for this round, and that name."""
    which = picker(labels=labels, classes=classes, labels_per_class=labels_per_class)
    if which == TYPICAL and select_kwargs.get("strategy") != "random":
        return typiclust_select(scores, k, **select_kwargs), TYPICAL
    return acquisition.select(scores, k, **select_kwargs), UNCERTAIN


def rank(
    scores: np.ndarray,
    *,
    picker: str,
    strategy: str,
    embeddings: np.ndarray | None = None,
    batch_size: int = 0,
    exploration_fraction: float = 0.0,
    seed: int = 0,
    labeled_embeddings: np.ndarray | None = None,
) -> tuple[np.ndarray, str]:
    """`acquisition.rank` under the hand-over: while `picker` is `typical` the batch is
    TypiClust's (on a random sample of at most TYPICLUST_SAMPLE of the pool, which bounds the
    k-means), the rest by score; else `acquisition.rank`. Returns (order, the picker used)."""
    if picker not in (TYPICAL, UNCERTAIN):
        raise ValueError(f"unknown picker {picker!r}; use {TYPICAL!r} or {UNCERTAIN!r}")
    typical = picker == TYPICAL and strategy != "random" and embeddings is not None
    if not typical or batch_size <= 0 or len(scores) == 0:
        order = acquisition.rank(
            scores,
            strategy=strategy,
            embeddings=embeddings,
            batch_size=batch_size,
            exploration_fraction=exploration_fraction,
            seed=seed,
            labeled_embeddings=labeled_embeddings,
        )
        return order, UNCERTAIN
    n = len(scores)
    sample = np.arange(n)
    if n > TYPICLUST_SAMPLE:
        sample = np.sort(np.random.default_rng(seed).choice(n, TYPICLUST_SAMPLE, replace=False))
    head = sample[
        typiclust_select(
            scores[sample],
            batch_size,
            embeddings=embeddings[sample],
            exploration_fraction=exploration_fraction,
            seed=seed,
            labeled_embeddings=labeled_embeddings,
        )
    ]
    left = np.ones(n, dtype=bool)
    left[head] = False
    tail = np.flatnonzero(left)
    tail = tail[np.argsort(-scores[tail], kind="stable")]
    return np.concatenate([head, tail]).astype(np.int64), TYPICAL
