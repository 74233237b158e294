"""What ``manage.py simulate`` reports: the curves' plot, labels-to-target, the label-quality
line of each crowd variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TARGETS = (0.90, 0.95)


def quality_line(variant: str, quality: list[tuple]) -> str:
    """The variant's means over seeds at its last round."""
    end = max(q[2] for q in quality if q[0] == variant)
    last = np.array([q[3:] for q in quality if q[0] == variant and q[2] == end], dtype=float)
    test, right, votes, reviews = last.mean(axis=0)
    return (
        f"{variant:>24}  at {end} labels: test accuracy {test:.4f}, labels right {right:.4f}, "
        f"{votes:.0f} votes, {reviews:.0f} reviews (mean of {len(last)} seeds)"
    )


def summary(rows, strategies) -> dict[str, dict[float, float | None]]:
    """Mean over seeds of the first label count at which each seed reached each target."""
    summary = {}
    for strategy in strategies:
        seeds = sorted({seed for s, seed, _, _ in rows if s == strategy})
        reach = {}
        for target in TARGETS:
            firsts = []
            for seed in seeds:
                hits = [n for s, sd, n, a in rows if s == strategy and sd == seed and a >= target]
                firsts.append(min(hits) if hits else None)
            reach[target] = (
                round(float(np.mean(firsts)), 1) if firsts and None not in firsts else None
            )
        summary[strategy] = reach
    return summary


def plot(rows, strategies, path: Path, title: str) -> None:
    # Imported here: pyplot picks a backend on import, and this command draws off-screen.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # (after choosing the backend)

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for strategy in strategies:
        by_labels: dict[int, list[float]] = {}
        for s, _seed, n, acc in rows:
            if s == strategy:
                by_labels.setdefault(n, []).append(acc)
        xs = sorted(by_labels)
        ax.plot(xs, [np.mean(by_labels[n]) for n in xs], marker="o", ms=3, label=strategy)
    for target in TARGETS:
        ax.axhline(target, color="grey", lw=0.6, ls="--")
    ax.set_xlabel("labels")
    ax.set_ylabel("test accuracy (1,000 held-out digits)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
