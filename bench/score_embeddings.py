"""Scoring a model on a backbone: from the stored embeddings against through the ResNet.

    .venv/bin/python -m bench.score_embeddings                # 5,000 images, about a minute
    .venv/bin/python -m bench.score_embeddings --width 64     # a ResNet-18 at full width

Measured in one run, the same model (a ResNet-18 of `--width`, small stem, random weights, 28
px digits; a head fitted on 200 of its features, as a round on a backbone makes it), the same
pool, strategy `diverse` (the default, whose batch selection both sides pay alike):
  1. pixels: `run_scoring` on Ray, the arrays already in the cache (a later round), best of 2;
  2. stored: `score_features` on the backbone's float16 features of the pool (what
     `learning_imageembedding` holds), best of 3. The product also reads the vectors from
     PostgreSQL first: 1.6 s per 100,000 (docs/benchmarks.md, "Stored embeddings at 1M").
Results and how to read them: docs/benchmarks.md, "Backbones".
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.score import make_pool, write_store
from training.backbones import Backbone, build_resnet
from training.cluster import cluster_cpus, ensure_ray
from training.contracts import ScoreSpec
from training.embed import embed_arrays
from training.head import fit_head
from training.models import (
    BACKBONE_CLASSIFIER,
    checkpoint_meta,
    classifier_from_backbone,
    save_checkpoint,
)
from training.score import run_scoring, score_features

CLASSES = tuple(str(d) for d in range(10))


def backbone_model(x: np.ndarray, width: int, path: Path) -> np.ndarray:
    """Save the round's model (backbone + head on 200 features) at `path`; return the pool's
    float16 features, as stored."""
    torch.manual_seed(0)
    resnet = build_resnet("resnet18", width=width, stem="small", in_channels=1, num_classes=0)
    backbone = Backbone(resnet, mean=[33.0], std=[78.0]).eval()
    started = time.perf_counter()
    features = embed_arrays(backbone, x)
    print(f"embedding the pool in-process: {time.perf_counter() - started:.1f}s (done once)")
    labels = np.arange(200) % 10  # random weights: cost, not accuracy
    head = fit_head(features[:200], labels, 10)
    model = classifier_from_backbone(
        backbone,
        backbone.info(),
        classes=CLASSES,
        head_weight=head.fc.weight.detach(),
        head_bias=head.fc.bias.detach(),
        unit_features=True,
    )
    meta = checkpoint_meta(model, arch=BACKBONE_CLASSIFIER, classes=CLASSES, input_size=28,
                           input_channels=1, dropout=0.0)  # fmt: skip
    save_checkpoint(str(path), model, meta)
    return features


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    ensure_ray()
    torch.set_num_threads(cluster_cpus())
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "images").mkdir()
        x = make_pool(args.images)
        items = tuple(write_store(x, root / "images"))
        features = backbone_model(x[:, None], args.width, root / "model.pt")
        spec = ScoreSpec(
            str(root / "model.pt"),
            items,
            str(root / "cache"),
            strategy="diverse",
            select_size=50,
            candidates=tuple(it.key for it in items[200:]),
        )
        run_scoring(spec)  # fills the cache: later rounds read arrays, not PNGs
        pixels_s, pixels = min((timed(lambda: run_scoring(spec)) for _ in range(2)), key=first)
        keys = [it.key for it in items]
        stored_s, stored = min(
            (timed(lambda: score_features(spec, keys, features)) for _ in range(3)), key=first
        )
        agree = float((stored.predicted == pixels.predicted).mean())
        n = len(items)
        print(f"ResNet-18 width {args.width}, {n} images, embed_dim {features.shape[1]}")
        print(f"pixels (run_scoring, warm cache): {pixels_s:6.2f}s  {n / pixels_s:8.0f} img/s")
        print(f"stored (score_features)         : {stored_s:6.2f}s  {n / stored_s:8.0f} img/s")
        print(
            f"stored / pixels: {stored_s / pixels_s:.3f}x the time; predictions agree {agree:.1%}"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def first(pair: tuple[float, object]) -> float:
    return pair[0]


if __name__ == "__main__":
    main()
