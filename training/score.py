"""Score an unlabeled pool: predictions, probabilities, acquisition scores, embeddings.

    .venv/bin/python -m pytest tests/training/test_score.py -p no:django -q

`run_scoring(spec)` is Ray's batch-inference pattern: the pool becomes a Ray Dataset of
(key, sha256) rows, `map_batches` runs `BatchScorer` (a callable class: the checkpoint is
loaded once per actor) over an actor pool sized to the cluster, one GPU per actor when the
cluster has GPUs. Each actor reads model-ready arrays from the shared cache, so a round after
the first never touches a JPEG. `score_arrays()` is the same computation on arrays in memory,
used by the simulations and by each actor. Pools under `ScoreSpec.inline_below` images are
scored by one Ray task in a warm worker process instead (no actor start-up).

`score_features(spec, keys, features)` scores a model on a backbone (`training.rounds`) from
the backbone's stored features instead: its head alone over (N, D) rows, in this process. It
returns what `run_scoring` returns for those features (the acquisition strategies see the same
probabilities and the same unit-length embeddings), at the cost of a matrix product instead of
a ResNet pass over every image.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import ray
import ray.data
import torch
import torch.nn.functional as F

from training import acquisition, handover
from training.cluster import cluster_cpus, cluster_gpus, ensure_ray, fill_cache
from training.contracts import STRATEGIES, ScoreResult, ScoreSpec
from training.data import ArrayCache
from training.head import head_from_checkpoint
from training.inference import pick_device
from training.models import Classifier, load_checkpoint
from training.progress import Progress

BLOCKS_PER_ACTOR = 8
# Stored features scored at a time (`score_features`): 32 MB of float32 at 512 dimensions, so
# a pool of a million is never held whole in float32 (the result keeps float16 embeddings).
FEATURE_CHUNK = 16_384


@torch.inference_mode()
def score_arrays(
    model: Classifier,
    x: np.ndarray,
    *,
    strategy: str,
    keys: Sequence[str] | None = None,
    masks: torch.Tensor | None = None,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, np.ndarray]:
    """One deterministic pass (+ head-only dropout samples for BALD) over uint8 arrays."""
    if strategy == "bald" and masks is None:
        masks = model.dropout_masks(20, seed)
    model.eval()
    device = next(model.parameters()).device
    use_amp = device.type == "cuda"
    probs, embs, bald_scores = [], [], []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size]).to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=use_amp):
            emb = model.embed(xb).float()
        probs.append(F.softmax(model.fc(emb), dim=1).cpu().numpy())
        embs.append(emb.cpu().numpy())
        if strategy == "bald":
            bald_scores.append(acquisition.bald(model.mc_probabilities(emb, masks).cpu().numpy()))
    c, d = model.num_classes, model.embed_dim
    p = np.concatenate(probs) if probs else np.zeros((0, c), np.float32)
    e = np.concatenate(embs) if embs else np.zeros((0, d), np.float32)
    if strategy == "bald":
        scores = np.concatenate(bald_scores).astype(np.float32) if bald_scores else np.zeros(0)
    else:
        scores = acquisition.uncertainty(strategy, p, keys=keys, seed=seed)
    return {
        "predicted": p.argmax(axis=1).astype(np.int64),
        "confidence": p.max(axis=1, initial=0.0).astype(np.float32),
        "probabilities": p.astype(np.float32),
        "scores": np.asarray(scores, dtype=np.float32),
        "embeddings": e.astype(np.float32),
    }


class BatchScorer:
    """`map_batches` callable: loads the checkpoint once, then scores batch after batch."""

    def __init__(
        self, checkpoint_path: str, cache_dir: str, strategy: str, mc_samples: int, seed: int
    ) -> None:
        # One torch thread per reserved CPU: several actors per node beat one actor with many
        # threads for a small model, and they do not fight over cores.
        cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
        torch.set_num_threads(max(1, int(cpus)))
        self.model, meta = load_checkpoint(checkpoint_path, pick_device())
        self.cache = ArrayCache(cache_dir, size=meta["input_size"], channels=meta["input_channels"])
        self.strategy = strategy
        self.seed = seed
        self.masks = self.model.dropout_masks(mc_samples, seed) if strategy == "bald" else None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keys = [str(k) for k in batch["key"]]
        x = self.cache.get([str(s) for s in batch["sha256"]])
        out = score_arrays(
            self.model, x, strategy=self.strategy, keys=keys, masks=self.masks, seed=self.seed
        )
        # Embeddings travel as float16: they are most of the bytes (1,600 per seed_cnn image),
        # and distances for diversity need three significant digits, not seven.
        out["embeddings"] = out["embeddings"].astype(np.float16)
        return {"key": np.asarray(keys, dtype=object), **out}


def _rows_per_block(n: int, actors: int, batch_size: int) -> int:
    """About 8 blocks per actor: few enough that per-task overhead vanishes, enough that a
    lost node or a slow actor costs a small share of the pool. Whole batches per block."""
    per_block = math.ceil(n / (actors * BLOCKS_PER_ACTOR))
    return max(1, math.ceil(per_block / batch_size)) * batch_size


def _pool_size(gpus: int) -> tuple[int, float, float]:
    """(actors, CPUs per actor, GPUs per actor) for the cluster as it is now."""
    if gpus:
        return gpus, 1.0, 1.0
    return max(1, cluster_cpus()), 1.0, 0.0


def run_scoring(spec: ScoreSpec, *, progress: Progress | None = None) -> ScoreResult:
    """Score `spec.items` with the checkpoint; rows come back in the order of `spec.items`."""
    if spec.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {spec.strategy!r}; known: {STRATEGIES}")
    started = time.perf_counter()
    ensure_ray()
    meta = load_checkpoint(spec.checkpoint_path)[1]
    items = _sampled(spec)
    if progress:
        progress("cache", 0.0)
    _, failed = fill_cache(
        items, cache_dir=spec.cache_dir, size=meta["input_size"], channels=meta["input_channels"]
    )
    bad = set(failed)
    items = [it for it in items if it.key not in bad]
    n = len(items)
    by_key: dict[str, np.ndarray] = {}
    if n and n < spec.inline_below:
        by_key = _score_inline(spec, items, progress)
    elif n:
        actors, cpus, gpus = _pool_size(cluster_gpus())
        rows = _rows_per_block(n, actors, spec.batch_size)
        keys_col = [it.key for it in items]
        shas_col = [it.sha256 for it in items]
        blocks = [
            pa.table({"key": keys_col[i : i + rows], "sha256": shas_col[i : i + rows]})
            for i in range(0, n, rows)
        ]
        ds = ray.data.from_arrow(blocks).map_batches(
            BatchScorer,
            fn_constructor_kwargs={
                "checkpoint_path": spec.checkpoint_path,
                "cache_dir": spec.cache_dir,
                "strategy": spec.strategy,
                "mc_samples": spec.mc_samples,
                "seed": spec.seed,
            },
            batch_size=spec.batch_size,
            batch_format="numpy",
            concurrency=min(actors, len(blocks)),
            num_cpus=cpus,
            num_gpus=gpus,
        )
        parts: list[dict[str, np.ndarray]] = []
        done = 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            parts.append(batch)
            done += len(batch["key"])
            if progress:
                progress("score", done / n)
        by_key = _merge(parts, [it.key for it in items])
    return _result(spec, items, by_key, failed, meta["classes"], started, progress)


def _sampled(spec: ScoreSpec) -> list:
    """`spec.items`, or the random share of them `spec.sample_fraction` asks for."""
    items = list(spec.items)
    if spec.sample_fraction is not None and spec.sample_fraction < 1.0:
        rng = np.random.default_rng(spec.seed)
        size = round(len(items) * spec.sample_fraction)
        items = [items[i] for i in np.sort(rng.choice(len(items), size=size, replace=False))]
    return items


def _result(
    spec: ScoreSpec,
    items: list,
    by_key: dict[str, np.ndarray],
    failed: Sequence[str],
    classes: Sequence[str],
    started: float,
    progress: Progress | None,
) -> ScoreResult:
    """The scored rows (`score_arrays`' fields, in the order of `items`) in acquisition order:
    what both paths, pixels and stored features, hand back."""
    n = len(items)
    keys = tuple(it.key for it in items)
    k = len(classes)
    d = by_key["embeddings"].shape[1] if n else 0
    scores = by_key["scores"] if n else np.zeros(0, np.float32)
    embeddings = by_key["embeddings"] if n else np.zeros((0, d), np.float16)
    order, picker = _priority_order(spec, keys, scores, embeddings)
    if progress:
        progress("done", 1.0)
    return ScoreResult(
        keys=keys,
        predicted=by_key["predicted"] if n else np.zeros(0, np.int64),
        confidence=by_key["confidence"] if n else np.zeros(0, np.float32),
        probabilities=by_key["probabilities"] if n else np.zeros((0, k), np.float32),
        scores=scores,
        embeddings=embeddings,
        priority=acquisition.priorities(order),
        failed_items=tuple(failed),
        seconds=time.perf_counter() - started,
        classes=tuple(classes),
        picker=picker,
    )


def score_features(
    spec: ScoreSpec,
    keys: Sequence[str],
    features: np.ndarray,
    *,
    failed: Sequence[str] = (),
    progress: Progress | None = None,
) -> ScoreResult:
    """`run_scoring` for a model on a backbone (arch "backbone") from the backbone's stored
    features of `spec.items` instead of their pixels: the head only, in this process (a
    matrix product and a softmax; no Ray, no image read). `features[i]` is the backbone's raw
    output (float16 is fine) for `keys[i]`; `failed` are the items that could not be read.
    Same rows, order, scores, BALD masks, embeddings (the unit features the trunk ends in)
    and acquisition batch as `run_scoring` gives for the same features."""
    if spec.strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {spec.strategy!r}; known: {STRATEGIES}")
    if len(keys) != len(features):
        raise ValueError(f"{len(keys)} keys for {len(features)} feature rows")
    started = time.perf_counter()
    model, meta = head_from_checkpoint(spec.checkpoint_path)
    row = {key: i for i, key in enumerate(keys)}
    lost = set(failed)
    items = _sampled(spec)
    unknown = [it.key for it in items if it.key not in row and it.key not in lost]
    if unknown:
        raise ValueError(f"no features and no failure for {len(unknown)} items, e.g. {unknown[0]}")
    failed = [it.key for it in items if it.key in lost and it.key not in row]
    items = [it for it in items if it.key in row]
    if progress:
        progress("score", 0.0)
    idx = np.array([row[it.key] for it in items], dtype=np.int64)
    features = np.asarray(features)
    masks = model.dropout_masks(spec.mc_samples, spec.seed) if spec.strategy == "bald" else None
    parts = []
    for start in range(0, len(idx), FEATURE_CHUNK):
        at = idx[start : start + FEATURE_CHUNK]
        out = score_arrays(
            model,
            features[at],
            strategy=spec.strategy,
            keys=[items[i].key for i in range(start, start + len(at))],
            masks=masks,
            seed=spec.seed,
            batch_size=FEATURE_CHUNK,
        )
        out["embeddings"] = out["embeddings"].astype(np.float16)  # as the actors send them
        parts.append(out)
    by_key = (
        {field: np.concatenate([p[field] for p in parts]) for field in parts[0]} if parts else {}
    )
    return _result(spec, items, by_key, failed, meta["classes"], started, progress)


@ray.remote
def _score_task(spec: ScoreSpec, keys: list[str], shas: list[str]) -> list[dict[str, np.ndarray]]:
    scorer = BatchScorer(
        spec.checkpoint_path, spec.cache_dir, spec.strategy, spec.mc_samples, spec.seed
    )
    step = spec.batch_size
    return [
        scorer({"key": np.asarray(keys[i : i + step]), "sha256": np.asarray(shas[i : i + step])})
        for i in range(0, len(keys), step)
    ]


def _score_inline(spec: ScoreSpec, items: list, progress: Progress | None) -> dict[str, np.ndarray]:
    """A small pool in one task (see `ScoreSpec.inline_below`); same rows as the pool path."""
    keys = [it.key for it in items]
    if progress:
        progress("score", 0.0)
    task = _score_task.options(num_cpus=1, num_gpus=1 if cluster_gpus() else 0)
    parts = ray.get(task.remote(spec, keys, [it.sha256 for it in items]))
    if progress:
        progress("score", 1.0)
    return _merge(parts, keys)


def _priority_order(
    spec: ScoreSpec, keys: tuple[str, ...], scores: np.ndarray, embeddings: np.ndarray
) -> tuple[np.ndarray, str]:
    """Candidates in acquisition order, then everything else by score; and the picker used
    for the batch (`training.handover`: typical picks while labels are few)."""
    ranking = dict(
        picker=spec.picker,
        strategy=spec.strategy,
        batch_size=spec.select_size,
        exploration_fraction=spec.exploration_fraction,
        seed=spec.seed,
    )
    if spec.candidates is None:  # the common case needs no copy of the embeddings
        return handover.rank(scores, embeddings=embeddings, **ranking)
    wanted = set(spec.candidates)
    is_cand = np.array([k in wanted for k in keys], dtype=bool)
    cand, other = np.flatnonzero(is_cand), np.flatnonzero(~is_cand)
    head, picker = handover.rank(
        scores[cand],
        embeddings=embeddings[cand],
        labeled_embeddings=embeddings[other] if len(other) else None,
        **ranking,
    )
    tail = other[np.argsort(-scores[other], kind="stable")]
    return np.concatenate([cand[head], tail]).astype(np.int64), picker


def _merge(parts: list[dict[str, np.ndarray]], keys: list[str]) -> dict[str, np.ndarray]:
    """Concatenate result batches into the order of `keys`; each key must appear exactly once."""
    got = [str(k) for p in parts for k in p["key"]]
    if len(got) != len(keys) or len(set(got)) != len(keys) or set(got) != set(keys):
        raise RuntimeError(f"scoring returned {len(got)} rows for {len(keys)} distinct items")
    where = {key: i for i, key in enumerate(keys)}
    rows = np.array([where[key] for key in got], dtype=np.int64)
    # Embeddings stay float16, as the actors send them (3.2 KB per seed_cnn image instead of
    # 6.4 KB); acquisition converts a chunk or a candidate set at a time.
    dtypes = {"predicted": np.int64, "confidence": np.float32, "probabilities": np.float32}
    dtypes |= {"scores": np.float32, "embeddings": np.float16}
    out = {
        field: np.empty((len(keys), *np.asarray(parts[0][field]).shape[1:]), dtype=dtype)
        for field, dtype in dtypes.items()
    }
    start = 0
    for i, part in enumerate(parts):  # one copy, straight into place; each part let go after
        size = len(part["key"])
        at = rows[start : start + size]
        in_order = len(at) and at[-1] - at[0] == len(at) - 1 and (np.diff(at) == 1).all()
        for field in dtypes:
            values = np.asarray(part[field])
            if in_order:
                out[field][at[0] : at[-1] + 1] = values  # a block in order: a slice copy
            else:
                out[field][at] = values
        parts[i] = None
        start += size
    return out
