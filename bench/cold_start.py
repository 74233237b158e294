"""How many labels to 90% on MNIST-5k, by acquisition rule and by how a project starts.

    .venv/bin/python -m bench.cold_start [--seeds 9] [--budget 245] [--start queue|balanced] \
        [--rules diverse typiclust random] [--target 0.9] [--min-steps N]

The engine's in-memory simulation (`training/simulate.py`, MNIST-5k, 20 first labels, 25 per
round, the worker's `TrainConfig()` recipe, 10% exploration), run to 90% test accuracy for
each rule side by side:

- `diverse`: the product's default (`training/acquisition.py`);
- `typiclust`: Hacohen et al. (2022), "Active Learning on a Budget": k-means of the model's
  embeddings (PCA to 50 dimensions) into labeled + batch clusters; each pick takes the most
  typical image (inverse mean distance to its 20 nearest neighbours) of the largest cluster
  with the fewest labels; the model's uncertainty plays no part (kept as a measured negative
  result: docs/benchmarks.md, "A typicality-only acquisition");
- `random`.

`--start queue` (the default) gives each rule the first 20 labels the product's queue serves an
empty project: the cold-start coverage order for `diverse` and `typiclust`, random order for
`random`. `--start balanced` hands every rule 2 random labels of each class instead.
Prints labels to `--target` (90%) per seed, the means and each rule's ratio to random.
`--min-steps` trains small label sets for that many steps instead of `TrainConfig.min_steps`
(figures measured before it became 1,000 used 300).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

import training.simulate as sim
from bench.protocol import _mnist5k
from training import acquisition
from training.contracts import TrainConfig

CONFIG = replace(TrainConfig(), num_threads=1, val_fraction=0.0)
PICK_NEIGHBOURS = 20


def add_min_steps(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--min-steps",
        type=int,
        default=None,
        help=f"steps for small label sets (default: the worker's, {TrainConfig().min_steps})",
    )


def use_min_steps(steps: int | None) -> None:
    """Train the rules' models with `steps` as `min_steps` (None: the worker's)."""
    global CONFIG
    if steps is not None:
        CONFIG = replace(CONFIG, min_steps=steps)


def typiclust(embeddings: np.ndarray, labeled: np.ndarray, k: int, seed: int) -> np.ndarray:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    points = acquisition.unit_rows(np.concatenate([embeddings, labeled]))
    z = PCA(n_components=min(50, points.shape[1]), random_state=seed).fit_transform(points)
    clusters = len(labeled) + k
    assign = KMeans(n_clusters=clusters, n_init=1, random_state=seed).fit(z).labels_
    pool = assign[: len(embeddings)]
    covered = np.bincount(assign[len(embeddings) :], minlength=clusters)
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
        n = min(PICK_NEIGHBOURS, len(members) - 1)
        density = 1.0 / (np.sort(d, axis=1)[:, 1 : n + 1].mean(axis=1) + 1e-9) if n else d[:, 0]
        picks.append(int(members[np.argmax(density)]))
        covered[c] += 1
    return np.array(picks, dtype=np.int64)


def typiclust_select(scores, k, *, strategy, embeddings=None, exploration_fraction=0.0, seed=0,
                     labeled_embeddings=None):  # fmt: skip
    """`acquisition.select`'s signature; the same share of random exploration picks."""
    rng = np.random.default_rng(seed)
    n_explore = round(k * exploration_fraction)
    picks = typiclust(embeddings, labeled_embeddings, k - n_explore, seed)
    rest = np.setdiff1d(np.arange(len(scores)), picks)
    return acquisition._interleave(picks, rng.choice(rest, size=n_explore, replace=False))


def run_rule(data: tuple, rule: str, *, seed: int, budget: int, target: float, start: str):
    """One seed's run of the engine's simulation under `rule` (diverse, typiclust or random),
    with the worker's recipe and 10% exploration for the model-driven rules; the curve."""
    sim.select = typiclust_select if rule == "typiclust" else acquisition.select
    try:
        return sim.simulate(
            *data,
            classes=tuple(str(i) for i in range(10)),
            strategy="random" if rule == "random" else "diverse",
            seed=seed,
            max_labels=budget,
            target=target,
            exploration_fraction=0.0 if rule == "random" else 0.1,
            config=CONFIG,
            start=start,
        )
    finally:
        sim.select = acquisition.select


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=9)
    parser.add_argument("--budget", type=int, default=245)
    parser.add_argument(
        "--start",
        choices=["queue", "balanced"],
        default="queue",
        help="first 20 labels: what the queue serves an empty project, or 2 of each class",
    )
    parser.add_argument(
        "--rules",
        nargs="+",
        choices=["diverse", "typiclust", "random"],
        default=["diverse", "random"],
    )
    parser.add_argument("--target", type=float, default=0.90, help="test accuracy to reach")
    add_min_steps(parser)
    args = parser.parse_args()
    use_min_steps(args.min_steps)
    data = _mnist5k()
    means = {}
    for rule in args.rules:
        started, reached = time.perf_counter(), []
        for seed in range(args.seeds):
            curve = run_rule(
                data, rule, seed=seed, budget=args.budget, target=args.target, start=args.start
            )
            reached.append(curve.labels_to_reach(args.target) or args.budget)
        means[rule] = float(np.mean(reached))
        took = time.perf_counter() - started
        print(
            f"{rule:>9}: labels to {args.target:.0%} {reached} mean {means[rule]:.1f} ({took:.0f}s)"
        )
    if "random" in means:
        for rule in (r for r in args.rules if r != "random"):
            print(f"{rule:>9} / random: {means[rule] / means['random']:.2f}")


if __name__ == "__main__":
    main()
