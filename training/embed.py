"""Embeddings of a project's images from a backbone file, kept as float16.

    .venv/bin/python -m pytest tests/training/test_head.py -p no:django -q

`embed_arrays(model, x)` is the computation on uint8 arrays in memory (eval mode, no grad,
batched). `run_embedding(spec)` is the product path: the pool is decoded into the shared
array cache on Ray (`fill_cache`, as for training and scoring), then one Ray task (a GPU when
the cluster has one) loads the backbone once and embeds the pool a chunk at a time, so a
large pool of large photos is never held whole; its progress reaches the caller through the
board of `training.progress`. Rows come back aligned with the keys of the items that could be
read; the others are listed in `failed_items`.

float16: 2 bytes a dimension (1 KB per image for a 512-d ResNet-18 embedding), and cosine
distances need three significant digits, not seven.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import ray
import torch
from torch import nn

from training.backbones import load_backbone
from training.cluster import cluster_gpus, ensure_ray, fill_cache, largest_node_cpus
from training.contracts import EmbedResult, EmbedSpec, ImageRef
from training.data import load_items
from training.inference import pick_device
from training.progress import Progress, board_beside_the_driver, follow_task, settle

# Images read from the cache per step of the task: 4,096 x 3 x 224 x 224 uint8 is 600 MB, the
# most a photo pool should hold in the task's memory at once; 32 px RGB is 12 MB.
CHUNK = 4096

# (path, device) -> (backbone in eval mode, info): `training.backbones.load_backbone`.
BackboneLoader = Callable[[str, torch.device], tuple[nn.Module, dict]]


@torch.inference_mode()
def embed_arrays(
    model: nn.Module,
    x: np.ndarray,
    *,
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """(N, D) float16 features of uint8 images (N, C, H, W); `model.embed_dim` is D.

    The model is moved to `device` (default: where its parameters are) and put in eval mode;
    mixed precision on a GPU, full precision on the CPU."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if np.asarray(x).ndim != 4:
        raise ValueError(f"images must be (N, C, H, W) uint8, got shape {np.shape(x)}")
    dim = getattr(model, "embed_dim", None)
    if not isinstance(dim, int):
        raise ValueError("the model has no integer `embed_dim`: pass a backbone, not a classifier")
    if device is None:
        device = next(model.parameters()).device
    device = torch.device(device)
    model.to(device).eval()
    out = np.empty((len(x), dim), dtype=np.float16)
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size]).to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            features = model(xb)
        if features.shape != (len(xb), dim):
            raise ValueError(
                f"the backbone returned {tuple(features.shape)} for {len(xb)} images, "
                f"expected ({len(xb)}, {dim}): its embed_dim does not match its output"
            )
        out[start : start + len(xb)] = features.float().cpu().numpy()
    return out


def load_backbone_file(path: str, device: torch.device) -> tuple[nn.Module, dict]:
    """The default loader: the backbone file `training.backbones` writes."""
    return load_backbone(path, device)


def _check(spec: EmbedSpec) -> None:
    if spec.batch_size < 1:
        raise ValueError(f"EmbedSpec.batch_size must be >= 1, got {spec.batch_size}")
    if spec.input_channels not in (1, 3) or spec.input_size < 1:
        raise ValueError(
            "EmbedSpec needs input_channels 1 or 3 and input_size >= 1, got "
            f"{spec.input_channels} and {spec.input_size}: use the backbone's own input shape"
        )
    keys = [item.key for item in spec.items]
    if len(set(keys)) != len(keys):
        raise ValueError("EmbedSpec.items has duplicate keys: each image once")


@ray.remote
def embed_task(
    spec: EmbedSpec,
    items: list[ImageRef],
    board: ray.actor.ActorHandle,
    threads: int,
    loader: BackboneLoader,
) -> tuple[list[str], np.ndarray, list[str]]:
    """Load the backbone once and embed `items` chunk by chunk: (keys, embeddings, failed)."""
    torch.set_num_threads(threads)
    device = pick_device()
    model, _ = loader(spec.backbone_path, device)
    keys: list[str] = []
    parts: list[np.ndarray] = []
    failed: list[str] = []
    board.post.remote("embed", 0.0)
    for start in range(0, len(items), CHUNK):
        chunk = items[start : start + CHUNK]
        x, kept, bad = load_items(
            chunk, cache_dir=spec.cache_dir, size=spec.input_size, channels=spec.input_channels
        )
        parts.append(embed_arrays(model, x, batch_size=spec.batch_size, device=device))
        keys.extend(chunk[i].key for i in kept)
        failed.extend(bad)
        board.post.remote("embed", min(1.0, (start + len(chunk)) / len(items)))
    settle(board)
    dim = int(model.embed_dim)
    embeddings = np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float16)
    return keys, embeddings, failed


def run_embedding(
    spec: EmbedSpec, *, progress: Progress | None = None, loader: BackboneLoader | None = None
) -> EmbedResult:
    """Embed `spec.items` with the backbone at `spec.backbone_path`, on Ray; `progress` is
    called here, in the driver. `loader` (path, device) -> (backbone, info) defaults to
    `training.backbones.load_backbone`; it must be importable by Ray's workers."""
    _check(spec)
    started = time.perf_counter()
    ensure_ray()
    if progress:
        progress("cache", 0.0)
    _, failed = fill_cache(
        spec.items, cache_dir=spec.cache_dir, size=spec.input_size, channels=spec.input_channels
    )
    bad = set(failed)
    items = [item for item in spec.items if item.key not in bad]
    gpus = cluster_gpus()
    threads = largest_node_cpus(with_gpu=bool(gpus))
    board = board_beside_the_driver()
    task = embed_task.options(num_cpus=threads, num_gpus=1 if gpus else 0)
    ref = task.remote(spec, items, board, threads, loader or load_backbone_file)
    try:
        follow_task(ref, board, progress)
        keys, embeddings, late = ray.get(ref)
    finally:
        ray.cancel(ref, force=True)  # a no-op once finished; frees its CPUs/GPU otherwise
        ray.kill(board)
    if progress:
        progress("done", 1.0)
    lost = {*failed, *late}
    return EmbedResult(
        keys=tuple(keys),
        embeddings=embeddings,
        failed_items=tuple(it.key for it in spec.items if it.key in lost),
        seconds=time.perf_counter() - started,
    )
