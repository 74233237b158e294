"""How many labels to 90% on MNIST-5k, by acquisition rule and by how a project starts.

    .venv/bin/python -m bench.cold_start [--seeds 9] [--budget 245] [--start queue|balanced] \
        [--rules diverse typiclust random] [--target 0.9] [--min-steps N]

The engine's in-memory simulation (`training/simulate.py`, MNIST-5k, 20 first labels, 25 per
round, the worker's `TrainConfig()` recipe, 10% exploration), run to 90% test accuracy for
each rule side by side:

- `diverse`: the product's default (`training/acquisition.py`);
- `typiclust`: Hacohen et al. (2022), "Active Learning on a Budget" (`training/handover.py`):
  k-means of the model's embeddings (PCA to 50 dimensions) into labeled + batch clusters; each
  pick takes the most typical image of the largest cluster with the fewest labels; the model's
  uncertainty plays no part (docs/benchmarks.md, "A typicality-only acquisition");
- `handover[:N]` (`bench.semi_supervised --rules`): `typiclust` below N labels per class (the
  engine's `HANDOVER_LABELS_PER_CLASS` without N), `diverse` from then on;
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
from training import acquisition, handover
from training.contracts import TrainConfig

CONFIG = replace(TrainConfig(), num_threads=1, val_fraction=0.0)
PICKERS: list[tuple[int, str]] = []  # (labels, picker) of each `handover` round, in order


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


def handover_picker(labels_per_class: float, classes: int = 10):
    """`acquisition.select`'s signature for the simulation: `training.handover`'s rule, with
    the labels so far counted from `labeled_embeddings` (the simulation passes them)."""

    def pick(scores, k, **kwargs):
        labeled = kwargs.get("labeled_embeddings")
        labels = 0 if labeled is None else len(labeled)
        chosen, which = handover.handover_select(
            scores, k, labels=labels, classes=classes, labels_per_class=labels_per_class, **kwargs
        )
        PICKERS.append((labels, which))
        return chosen

    return pick


def rule_select(rule: str):
    """The selection function a rule's simulation runs: `handover:5` hands over at 5 per class."""
    if rule == "typiclust":
        return handover.typiclust_select
    if rule.startswith("handover"):
        _, _, at = rule.partition(":")
        return handover_picker(float(at) if at else handover.HANDOVER_LABELS_PER_CLASS)
    return acquisition.select


def run_rule(data: tuple, rule: str, *, seed: int, budget: int, target: float, start: str):
    """One seed's run of the engine's simulation under `rule` (diverse, typiclust or random),
    with the worker's recipe and 10% exploration for the model-driven rules; the curve."""
    sim.select = rule_select(rule)
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
