"""Active-learning simulations on the 5,000 real MNIST digits (no Django, no image files).

    .venv/bin/python -m pytest tests/training/test_simulation.py -q -s   # -s prints the curves

Start with 20 labels (2 per class), acquire 25 per round, retrain from scratch each round,
measure accuracy on the 1,000 clean test digits. Each (strategy, seed) curve runs as one Ray
task, so the two cores here run two curves at a time; inside a task everything is in memory.
"""

from __future__ import annotations

import numpy as np
import pytest
import ray

from tests.training.conftest import CLASSES, Digits
from training.contracts import DEFAULT_STRATEGY
from training.simulate import JUNK_KINDS, Curve, dirty_pool, first_labels, simulate

TARGET = 0.9
CLEAN_SEEDS = (0, 1, 2, 3)
DIRTY_SEEDS = (0, 1)
DEFAULT_EXPLORATION = 0.2  # the random exploration slice that goes with the default strategy


def run_curves(jobs: list[dict]) -> list[Curve]:
    remote = ray.remote(num_cpus=1)(simulate)
    refs = [remote.remote(**job) for job in jobs]
    return ray.get(refs)


def labels_needed(curves: list[Curve]) -> list[int]:
    needed = [c.labels_to_reach(TARGET) for c in curves]
    assert None not in needed, [(c.strategy, c.seed, c.labels[-1]) for c in curves]
    return [int(n) for n in needed if n is not None]


def show(title: str, curves: list[Curve], kind: np.ndarray | None = None) -> None:
    print(f"\n{title}")
    for c in curves:
        points = " ".join(f"{n}:{a:.3f}" for n, a in zip(c.labels, c.accuracy, strict=True))
        junk = ""
        if kind is not None:
            picked = kind[c.acquired]
            junk = " junk " + str({k: int((picked == i).sum()) for i, k in enumerate(JUNK_KINDS)})
        reached = c.labels_to_reach(TARGET)
        print(f"  {c.strategy:>8} seed {c.seed}: to 90% {reached}{junk}\n    {points}")


@pytest.mark.slow
def test_margin_needs_at_most_60_percent_of_the_labels_random_needs(
    ray_local: None, digits: Digits
) -> None:
    (x, y), (tx, ty) = digits.train, digits.test
    jobs = [
        {
            "pool_x": x,
            "pool_y": y,
            "test_x": tx,
            "test_y": ty,
            "classes": CLASSES,
            "strategy": strategy,
            "seed": seed,
            "max_labels": 500,
        }
        for strategy in ("random", "margin")
        for seed in CLEAN_SEEDS
    ]
    curves = run_curves(jobs)
    random_curves, margin_curves = curves[: len(CLEAN_SEEDS)], curves[len(CLEAN_SEEDS) :]
    show("clean MNIST pool (labels:accuracy)", curves)
    random_n, margin_n = (
        np.mean(labels_needed(random_curves)),
        np.mean(labels_needed(margin_curves)),
    )
    print(
        f"  mean labels to 90%: random {random_n:.1f}, margin {margin_n:.1f}, "
        f"ratio {margin_n / random_n:.2f}"
    )
    assert margin_n <= 0.6 * random_n


@pytest.mark.slow
def test_default_strategy_needs_no_more_labels_than_random_on_a_dirty_pool(
    ray_local: None, digits: Digits
) -> None:
    (x, y), (tx, ty) = digits.train, digits.test
    pools = {seed: dirty_pool(x, y, fraction=0.15, seed=seed) for seed in DIRTY_SEEDS}
    base = {"test_x": tx, "test_y": ty, "classes": CLASSES, "max_labels": 500}

    def job(strategy: str, seed: int, **extra: object) -> dict:
        px, py, _ = pools[seed]
        return base | {"pool_x": px, "pool_y": py, "strategy": strategy, "seed": seed} | extra

    jobs = [job(DEFAULT_STRATEGY, s, exploration_fraction=DEFAULT_EXPLORATION) for s in DIRTY_SEEDS]
    jobs += [job("random", s) for s in DIRTY_SEEDS]
    curves = run_curves(jobs)
    default_curves, random_curves = curves[: len(DIRTY_SEEDS)], curves[len(DIRTY_SEEDS) :]
    default_n = labels_needed(default_curves)
    # Contrast: plain entropy, given as many labels as the default needed on each seed.
    entropy_curves = run_curves(
        [job("entropy", s, max_labels=n) for s, n in zip(DIRTY_SEEDS, default_n, strict=True)]
    )
    for seed in DIRTY_SEEDS:
        kind = pools[seed][2]
        by_seed = [c for c in (*default_curves, *random_curves, *entropy_curves) if c.seed == seed]
        show(f"dirty pool, 15% junk, seed {seed} (labels:accuracy)", by_seed, kind)
    random_n = labels_needed(random_curves)
    print(
        f"  mean labels to 90%: {DEFAULT_STRATEGY} {np.mean(default_n):.1f}, random "
        f"{np.mean(random_n):.1f}; entropy at the same budget: "
        f"{np.mean([c.accuracy[-1] for c in entropy_curves]):.3f}"
    )
    assert np.mean(default_n) <= np.mean(random_n)

    def junk_share(c: Curve) -> float:
        return float((pools[c.seed][2][c.acquired] >= 0).mean())

    # Why: entropy spends its budget on noise and blank frames, the default does not.
    assert np.mean([junk_share(c) for c in entropy_curves]) > 2 * np.mean(
        [junk_share(c) for c in default_curves]
    )


def test_a_queue_start_covers_the_pool_and_a_balanced_start_takes_each_class_alike() -> None:
    # Eight looks (a bright square in one of eight places), 25 noisy copies of each.
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), 25)
    x = rng.normal(20, 10, (len(y), 1, 28, 28))
    for i, look in enumerate(y):
        top, left = 2 + 13 * (look // 4), 1 + 7 * (look % 4)
        x[i, 0, top : top + 10, left : left + 6] += 200
    x = np.clip(x, 0, 255).astype(np.uint8)

    covered = first_labels(x, y, strategy="diverse", start="queue", per_class=1, seed=0)
    assert sorted(y[covered]) == list(range(8))  # 8 of 200 in random order: p = 0.002
    shuffled = first_labels(x, y, strategy="random", start="queue", per_class=1, seed=0)
    assert len(set(shuffled)) == 8
    balanced = first_labels(x, y, strategy="random", start="balanced", per_class=2, seed=0)
    assert sorted(y[balanced]) == sorted(list(range(8)) * 2)
    with pytest.raises(ValueError, match="unknown start 'first'"):
        first_labels(x, y, strategy="diverse", start="first", per_class=1, seed=0)
