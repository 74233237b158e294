"""What semi-supervised training (FixMatch) is worth to each acquisition rule, on MNIST-5k.

    .venv/bin/python -m bench.semi_supervised [--seeds 6] [--budget 245] [--target 0.9] \
        [--rules diverse typiclust random handover handover:N] [--train supervised fixmatch] \
        [--dirty 0.15] [--min-steps N]

The engine's in-memory simulation (`training/simulate.py` with the setup of `bench.cold_start
--start queue`: 20 first labels from what the queue serves an empty project, 25 per round, 10%
exploration for the model-driven rules), run until `--target` test accuracy, with each rule
trained two ways side by side:

- `supervised`: the worker's `TrainConfig()` recipe on the labels alone (a project's default);
- `fixmatch`: the same `train.fit` given the whole pool as `unlabeled`, which is what a project
  with `semi_supervised` on trains (`training/semi.py`, Sohn et al. 2020): every step also takes
  `fixmatch_mu` x 32 pool images, labels those the model is >= `fixmatch_threshold` sure of
  under a weak augmentation (the worker's 2 px shifts) and trains on them under a strong one
  (rotation, scale, shear, translation, contrast and brightness, a cut-out square). The same
  steps (`--min-steps`; the figures in docs/benchmarks.md used 300) and schedule; about five
  times the compute of a supervised round.

The figures in docs/benchmarks.md ("Semi-supervised training") were measured with this
bench's first, standalone loop, whose labeled batches had the 2 px shifts only (no affine warp)
and were drawn class-balanced; the loop now is the product's. Prints labels to 90% (and to 95%
with `--target 0.95`) per seed, the means, each rule's mean curve (a seed that stopped at the
target keeps its last accuracy), which picker each `handover` round used, and each rule's
ratio to `random` under the same training.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import bench.cold_start as cold
import training.simulate as sim
from bench.cold_start import add_min_steps, run_rule, use_min_steps
from bench.protocol import _mnist5k


def rule_name(text: str) -> str:
    if text in ("diverse", "typiclust", "random", "handover"):
        return text
    name, _, at = text.partition(":")
    try:
        if name == "handover" and float(at) >= 0:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"unknown rule {text!r}")


def mean_curve(curves: list) -> dict[int, float]:
    """Mean test accuracy at each labeled-set size over seeds; a seed that stopped at the
    target keeps its last accuracy (it would not have got worse by much)."""
    sizes = sorted({n for c in curves for n in c.labels})
    out = {}
    for n in sizes:
        accs = [c.accuracy[max(i for i, m in enumerate(c.labels) if m <= n)] for c in curves]
        out[n] = float(np.mean(accs))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--budget", type=int, default=245)
    parser.add_argument("--target", type=float, default=0.90, help="stop a seed's run here")
    parser.add_argument(
        "--rules", nargs="+", type=rule_name, default=["diverse", "typiclust", "random"],
        help="diverse, typiclust, random, handover (at the engine's threshold) or handover:N "
        "(typicality-first below N labels per class)",
    )  # fmt: skip
    parser.add_argument(
        "--train", nargs="+", choices=["supervised", "fixmatch"], default=["supervised", "fixmatch"]
    )
    parser.add_argument("--dirty", type=float, default=0.0, help="share of the pool made junk")
    add_min_steps(parser)
    args = parser.parse_args()
    use_min_steps(args.min_steps)
    torch.set_num_threads(1)
    pool_x, pool_y, test_x, test_y = _mnist5k()
    if args.dirty:
        pool_x, pool_y, _ = sim.dirty_pool(pool_x, pool_y, fraction=args.dirty, seed=0)
    data = (pool_x, pool_y, test_x, test_y)
    targets = sorted({0.90, args.target})
    supervised_fit = sim.fit
    for train in args.train:
        means: dict[str, list[float]] = {}
        sim.fit = (
            supervised_fit
            if train == "supervised"
            else lambda x, y, **kw: supervised_fit(x, y, unlabeled=pool_x, **kw)
        )
        for rule in args.rules:
            started, reached, curves = time.perf_counter(), {t: [] for t in targets}, []
            for seed in range(args.seeds):
                cold.PICKERS.clear()
                curve = run_rule(
                    data, rule, seed=seed, budget=args.budget, target=args.target, start="queue"
                )
                curves.append(curve)
                for t in targets:
                    reached[t].append(curve.labels_to_reach(t) or args.budget)
                print(
                    f"  {train} {rule} seed {seed}: "
                    + " ".join(
                        f"{n}:{a:.1%}" for n, a in zip(curve.labels, curve.accuracy, strict=True)
                    ),
                    flush=True,
                )
                if cold.PICKERS:
                    print("    pickers: " + " ".join(f"{n}:{w}" for n, w in cold.PICKERS))
            means[rule] = [float(np.mean(reached[t])) for t in targets]
            took = time.perf_counter() - started
            for t in targets:
                print(
                    f"{train:>10} {rule:>9}: labels to {t:.0%} {reached[t]} "
                    f"mean {np.mean(reached[t]):.1f} ({took:.0f}s)",
                    flush=True,
                )
            curve_text = " ".join(f"{n}:{a:.1%}" for n, a in mean_curve(curves).items())
            print(f"{train:>10} {rule:>9}: mean curve {curve_text}", flush=True)
        if "random" in means:
            for rule in (r for r in args.rules if r != "random"):
                ratios = " ".join(
                    f"{t:.0%}: {m / r:.2f}"
                    for t, m, r in zip(targets, means[rule], means["random"], strict=True)
                )
                print(f"{train:>10} {rule:>9} / random: {ratios}", flush=True)
    sim.fit = supervised_fit


if __name__ == "__main__":
    main()
