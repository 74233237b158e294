"""Acquisition: which unlabeled images to label next. Pure numpy (plus data.py for cold start).

    .venv/bin/python -m pytest tests/training/test_acquisition.py -p no:django -q

Per-item scores (higher = more informative): `least_confidence`, `margin`, `entropy`, `bald`
(mutual information between prediction and dropout mask), `random`.
Batch selection: `select()` picks one acquisition batch, `rank()` orders the whole pool.

The default, `diverse`, exists because real pools are dirty. Top-k uncertainty ranks blank
frames, noise and junk first (they are uncertain forever, whatever their label) and picks ten
copies of one hard image; on such pools it can lose to random order (Gashi et al. 2024,
"Deep Active Learning: A Reality Check"). `diverse` therefore
  1. weights margin uncertainty by *typicality* (inverse mean distance to the nearest
     neighbours in embedding space, as a rank in (0, 1]), so isolated outliers wait,
  2. picks the batch by weighted k-center greedy among the top candidates (each pick
     maximises weight x distance to what is already picked), so a cluster of near-copies -
     blanks, bursts of one shot - yields one image, and near-duplicates are never picked,
  3. leaves `exploration_fraction` of the batch to uniform random choice, which keeps
     covering the data whatever the model believes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from training.contracts import STRATEGIES, ColdStartOrder, ImageRef

EPS = 1e-12  # keeps log(0) and 0/0 out of the formulas
CANDIDATES_PER_PICK = 10  # `diverse` considers the top 10k weighted items for a k-item batch
NEIGHBOURS = 10  # k of the kNN density behind typicality
DUPLICATE_RADIUS = 0.1  # near-duplicate: closer than this fraction of the median distance
PROJECTED_DIM = 256  # typicality's kNN runs on a random projection of wider embeddings
TYPICALITY_POWER = 2  # weight = uncertainty x typicality^2: outliers (noise, inverted) fall far
COLD_START_SIDE = 8  # px; cold-start coverage compares 8x8 thumbnails, enough for layout
PROJECT_CHUNK = 4096  # rows converted to float32 and projected at a time (26 MB at 1600-d)


def least_confidence(probs: np.ndarray) -> np.ndarray:
    return 1.0 - probs.max(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 - (p_top1 - p_top2): 1 when the two best classes tie, 0 when one class has it all."""
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats; 0 log 0 counts as 0."""
    return -(probs * np.log(np.clip(probs, EPS, None))).sum(axis=1)


def bald(mc_probs: np.ndarray) -> np.ndarray:
    """(T, N, C) dropout samples -> H[mean p] - mean H[p]: disagreement between the samples."""
    mean = mc_probs.mean(axis=0)
    expected = np.mean([entropy(p) for p in mc_probs], axis=0)
    return np.maximum(entropy(mean) - expected, 0.0)


def random_scores(keys: Sequence[str], seed: int = 0) -> np.ndarray:
    """Uniform in [0, 1) from a hash of (seed, key): the same whatever batch an item is in."""
    out = np.empty(len(keys))
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(digest, "little") / 2.0**64
    return out


def uncertainty(
    strategy: str,
    probs: np.ndarray,
    *,
    mc_probs: np.ndarray | None = None,
    keys: Sequence[str] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Per-item score for `strategy`, float32, higher = label sooner."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; known: {STRATEGIES}")
    if strategy == "random":
        if keys is None:
            raise ValueError("random scores are derived from item keys")
        scores = random_scores(keys, seed)
    elif strategy == "least_confidence":
        scores = least_confidence(probs)
    elif strategy == "entropy":
        scores = entropy(probs)
    elif strategy == "bald":
        if mc_probs is None:
            raise ValueError("bald needs MC dropout samples (T, N, C)")
        scores = bald(mc_probs)
    else:  # margin, and diverse, whose batch-level part lives in select()
        scores = margin(probs)
    return scores.astype(np.float32)


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) squared Euclidean distances, clipped at 0 against rounding."""
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def typicality(
    points: np.ndarray,
    *,
    neighbours: int = NEIGHBOURS,
    reference: int = 2000,
    seed: int = 0,
    normalize: bool = False,
) -> np.ndarray:
    """Density rank in (0, 1]: 1 for the most typical item, ~0 for the most isolated.

    Density is 1 / mean distance to the `neighbours` nearest of a random reference sample
    (at most `reference` items, so the cost is O(N * reference), fine for large pools).
    A rank, not the raw density, so it multiplies uncertainties without rescaling them.
    `normalize`: measure between unit-length rows (cosine), done a chunk at a time like the
    projection, so a float16 pool of a million embeddings is never copied whole to float32.
    """
    n = len(points)
    if n < 3:  # no neighbourhood to speak of: everything is equally typical
        return np.ones(n)
    rng = np.random.default_rng(seed)
    proj = None
    if points.shape[1] > PROJECTED_DIM:
        # Johnson-Lindenstrauss: a Gaussian projection keeps distances within ~10% and makes
        # the kNN search 6x cheaper on seed_cnn's 1600-d features.
        proj = rng.standard_normal((points.shape[1], PROJECTED_DIM)).astype(np.float32)
        proj = proj / np.sqrt(PROJECTED_DIM)
    if proj is not None or normalize or points.dtype != np.float32:
        out = np.empty((n, PROJECTED_DIM if proj is not None else points.shape[1]), np.float32)
        for start in range(0, n, PROJECT_CHUNK):
            chunk = points[start : start + PROJECT_CHUNK].astype(np.float32)
            chunk = unit_rows(chunk) if normalize else chunk
            out[start : start + PROJECT_CHUNK] = chunk @ proj if proj is not None else chunk
        points = out
    ref_idx = np.sort(rng.choice(n, size=min(n, reference), replace=False))
    ref = points[ref_idx]
    k = min(neighbours, len(ref) - 1) if len(ref) > 1 else 1
    mean_dist = np.empty(n)
    for start in range(0, n, 1024):
        d = np.sqrt(squared_distances(points[start : start + 1024], ref))
        # The item itself may be in the reference sample: take k+1 smallest and drop the first.
        nearest = np.partition(d, min(k, d.shape[1] - 1), axis=1)[:, : k + 1]
        nearest.sort(axis=1)
        mean_dist[start : start + 1024] = nearest[:, 1:].mean(axis=1) if k else nearest[:, 0]
    order = np.argsort(-mean_dist, kind="stable")  # most isolated first
    ranks = np.empty(n)
    ranks[order] = np.arange(1, n + 1)
    return ranks / n


def k_center_greedy(
    points: np.ndarray,
    k: int,
    *,
    weights: np.ndarray | None = None,
    selected: Sequence[int] = (),
    covered: np.ndarray | None = None,
    duplicate_radius: float = 0.0,
    saturation: float = np.inf,
) -> np.ndarray:
    """Pick `k` more indices, each maximising weight x min(distance to picked, saturation).

    Without weights or saturation this is the classic 2-approximate k-center (Sener &
    Savarese 2018). `saturation` caps how much being far away is worth: beyond it a point is
    simply "not covered", so an isolated outlier cannot outbid a typical uncertain point.
    `covered` are points outside `points` that count as picked already (the labeled set).
    With nothing picked yet the first pick is the heaviest point. Points within
    `duplicate_radius` of a picked or covered point are never picked.
    """
    n = len(points)
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    min_dist = np.full(n, np.inf)
    taken = np.zeros(n, dtype=bool)
    fixed = [points[list(selected)]] if len(selected) else []
    taken[list(selected)] = True
    if covered is not None and len(covered):
        fixed.append(covered)
    for block in fixed:
        for start in range(0, len(block), 1024):
            d = np.sqrt(squared_distances(points, block[start : start + 1024]).min(axis=1))
            min_dist = np.minimum(min_dist, d)
    picks: list[int] = []
    for _ in range(min(k, n - int(taken.sum()))):
        gain = np.where(np.isinf(min_dist), w, w * np.minimum(min_dist, saturation))
        gain[taken | (min_dist <= duplicate_radius)] = -np.inf
        best = int(np.argmax(gain))
        if not np.isfinite(gain[best]):
            break
        picks.append(best)
        taken[best] = True
        d = np.sqrt(squared_distances(points, points[best : best + 1]))[:, 0]
        min_dist = np.minimum(min_dist, d)
    return np.array(picks, dtype=np.int64)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length: distances become cosine distances, blind to activation size."""
    x = x.astype(np.float32, copy=False)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), EPS)


def _median_distance(points: np.ndarray, seed: int, *, normalize: bool = False) -> float:
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), size=min(len(points), 500), replace=False)]
    sample = unit_rows(sample) if normalize else sample
    d = np.sqrt(squared_distances(sample, sample))
    positive = d[d > 0]
    return float(np.median(positive)) if positive.size else 0.0


def select(
    scores: np.ndarray,
    k: int,
    *,
    strategy: str,
    embeddings: np.ndarray | None = None,
    exploration_fraction: float = 0.0,
    seed: int = 0,
    labeled_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """Indices of one acquisition batch of `k` items, in labeling order.

    `labeled_embeddings` (diverse only): items labeled already; the batch skips near-copies
    of them, so a 151st blank frame is not asked for after the first was labeled.
    """
    n = len(scores)
    k = min(k, n)
    rng = np.random.default_rng(seed)
    if strategy == "random":
        return rng.permutation(n)[:k]
    n_explore = round(k * exploration_fraction)
    explore = rng.choice(n, size=n_explore, replace=False) if n_explore else np.zeros(0, int)
    rest = np.setdiff1d(np.arange(n), explore)
    if strategy == "diverse":
        if embeddings is None:
            raise ValueError("diverse selection needs embeddings")
        # Cosine geometry throughout; only the candidates are ever held as float32 rows.
        weights = scores * typicality(embeddings, seed=seed, normalize=True) ** TYPICALITY_POWER
        by_weight = rest[np.argsort(-weights[rest], kind="stable")]
        need = k - n_explore
        size = need * CANDIDATES_PER_PICK
        # Distance scale from the whole pool: among the candidates alone it collapses when they
        # are mostly copies of one image (150 blank frames), and so would the duplicate radius.
        median = _median_distance(embeddings, seed, normalize=True)
        while True:
            # A pool full of near-copies (150 blank frames, say) can leave too few distinct
            # candidates: widen the candidate set until the batch fills or the pool runs out.
            pool = np.concatenate([explore, by_weight[:size]])
            local = k_center_greedy(
                unit_rows(embeddings[pool]),
                need,
                weights=weights[pool] + EPS,
                selected=range(n_explore),
                covered=None if labeled_embeddings is None else unit_rows(labeled_embeddings),
                duplicate_radius=DUPLICATE_RADIUS * median,
                saturation=median,
            )
            chosen = pool[local]
            if len(chosen) == need or size >= len(by_weight):
                break
            size *= 4
        if len(chosen) < need:  # the whole pool is near-copies: top up by weight
            left = by_weight[~np.isin(by_weight, chosen)]
            chosen = np.concatenate([chosen, left[: need - len(chosen)]])
    else:
        chosen = rest[np.argsort(-scores[rest], kind="stable")[: k - n_explore]]
    return _interleave(chosen, explore)


def _interleave(main: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """Spread `spread` evenly through `main`, so a partly labeled batch still explores."""
    if len(spread) == 0:
        return main.astype(np.int64)
    total = len(main) + len(spread)
    slots = np.round(np.linspace(0, total - 1, len(spread) + 2)[1:-1]).astype(int)
    out = np.empty(total, dtype=np.int64)
    mask = np.zeros(total, dtype=bool)
    mask[slots] = True
    out[mask] = spread
    out[~mask] = main
    return out


def rank(
    scores: np.ndarray,
    *,
    strategy: str,
    embeddings: np.ndarray | None = None,
    batch_size: int = 0,
    exploration_fraction: float = 0.0,
    seed: int = 0,
    labeled_embeddings: np.ndarray | None = None,
) -> np.ndarray:
    """A full priority order of the pool: the `select()` batch first, then by score."""
    n = len(scores)
    if strategy == "random":
        return np.random.default_rng(seed).permutation(n)
    head = (
        select(
            scores,
            batch_size,
            strategy=strategy,
            embeddings=embeddings,
            exploration_fraction=exploration_fraction,
            seed=seed,
            labeled_embeddings=labeled_embeddings,
        )
        if batch_size > 0
        else np.zeros(0, dtype=np.int64)
    )
    left = np.ones(n, dtype=bool)
    left[head] = False
    tail = np.flatnonzero(left)
    tail = tail[np.argsort(-scores[tail], kind="stable")]
    return np.concatenate([head, tail]).astype(np.int64)


def priorities(order: np.ndarray) -> np.ndarray:
    """Inverse of an order: priorities[i] = position of item i (0 = label first)."""
    out = np.empty(len(order), dtype=np.int64)
    out[order] = np.arange(len(order))
    return out


def thumbnails(x: np.ndarray, side: int = COLD_START_SIDE) -> np.ndarray:
    """(N, C, H, W) uint8 -> (N, C * side * side) float32 block means in 0..1."""
    n, c, h, w = x.shape
    ys = np.linspace(0, h, side + 1).astype(int)
    xs = np.linspace(0, w, side + 1).astype(int)
    out = np.empty((n, c, side, side), dtype=np.float32)
    for i in range(side):
        for j in range(side):
            block = x[:, :, ys[i] : ys[i + 1], xs[j] : xs[j + 1]]
            out[:, :, i, j] = block.mean(axis=(2, 3)) / 255.0
    return out.reshape(n, -1)


def coverage_order(points: np.ndarray, *, limit: int | None = 1000, seed: int = 0) -> np.ndarray:
    """Cold-start order: typicality-weighted k-center for the first `limit`, then random.

    Plain k-center starts with the most isolated points - in a dirty pool, the junk. Weighting
    each point's distance by its typicality rank, and capping distance at the median
    pairwise distance, keeps the coverage and sends the outliers to the back.
    """
    n = len(points)
    limit = n if limit is None else min(limit, n)
    weights = typicality(points, seed=seed)
    median = _median_distance(points, seed)
    head = k_center_greedy(points, limit, weights=weights, saturation=median or np.inf)
    rest = np.setdiff1d(np.arange(n), head)
    return np.concatenate([head, np.random.default_rng(seed).permutation(rest)]).astype(np.int64)


def cold_start_order(
    items: Sequence[ImageRef],
    cache_dir: str,
    *,
    input_size: int,
    input_channels: int,
    limit: int | None = 1000,
    seed: int = 0,
) -> ColdStartOrder:
    """Order a pool for its first labels without a model (decodes into the cache as needed)."""
    from training.data import load_items  # Pillow is only needed on this path

    x, kept, failed = load_items(
        items, cache_dir=cache_dir, size=input_size, channels=input_channels
    )
    order = coverage_order(thumbnails(x), limit=limit, seed=seed)
    return ColdStartOrder(tuple(items[kept[i]].key for i in order), tuple(failed))
