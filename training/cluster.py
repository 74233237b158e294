"""Connecting to Ray, sizing work to the cluster, and filling the array cache in parallel.

    RAY_ADDRESS=ray://head:10001 .venv/bin/python -c "from training.cluster import ensure_ray; \
ensure_ray()"

Without RAY_ADDRESS a local Ray is started with this machine's CPUs and GPUs (Ray detects
both); with it, the worker joins the existing cluster and uses whatever nodes it has.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
import ray
import ray.data

from training.contracts import ColdStartOrder, ImageRef
from training.data import ArrayCache

DECODE_CHUNK = 2048  # images per decode task and per cache shard: ~1.6 MB at 28x28 L
THUMBNAIL_CHUNK = 4096  # cached arrays read at a time when making cold-start thumbnails


def ensure_ray() -> None:
    """Idempotent: join RAY_ADDRESS when set, else start a quiet local Ray sized to the machine."""
    if not ray.is_initialized():
        # "local" always starts a fresh Ray: without it, ray.init() would join whatever cluster
        # another program on this machine started last (/tmp/ray/ray_current_cluster).
        address = os.environ.get("RAY_ADDRESS") or "local"
        kwargs: dict = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address == "local":
            kwargs |= {"num_cpus": os.cpu_count() or 1, "include_dashboard": False}
            _quiet_token_auth_notice()
        ray.init(address=address, **kwargs)
    quiet_ray_data()  # also when the caller started Ray itself


class _DropTokenAuthNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Token authentication is enabled for this")


def _quiet_token_auth_notice() -> None:
    """Ray (2.60) turns token authentication on for a new local cluster, which is what we want,
    and says so as a WARNING at every start. Drop that one notice: every other message of the
    module (auth disabled, token missing) still gets through. RAY_AUTH_MODE still decides."""
    module = logging.getLogger("ray._private.authentication.authentication_token_setup")
    if not any(isinstance(f, _DropTokenAuthNotice) for f in module.filters):
        module.addFilter(_DropTokenAuthNotice())


def quiet_ray_data() -> None:
    """Progress bars and per-operator logs are noise in a background worker's log."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def cluster_gpus() -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> int:
    return int(ray.cluster_resources().get("CPU", 1))


def largest_node_cpus(*, with_gpu: bool = False) -> int:
    """CPUs of the biggest alive node (with a GPU, if asked): the most one task can be given.

    A GPU run must ask for no more CPUs than a GPU node has, or a CPU-only head bigger than
    every GPU node would leave it unschedulable for ever."""
    return node_cpus(ray.nodes(), with_gpu=with_gpu)


def node_cpus(nodes: Sequence[dict], *, with_gpu: bool = False) -> int:
    sizes = [
        int(n["Resources"].get("CPU", 0))
        for n in nodes
        if n.get("Alive") and (not with_gpu or n["Resources"].get("GPU", 0) > 0)
    ]
    return max(sizes, default=1) or 1


@ray.remote
def _fill_chunk(items: list[ImageRef], cache_dir: str, size: int, channels: int) -> list[str]:
    return ArrayCache(cache_dir, size=size, channels=channels).fill(items)


def fill_cache(
    items: Sequence[ImageRef], *, cache_dir: str, size: int, channels: int
) -> tuple[ArrayCache, list[str]]:
    """Decode whatever the cache lacks, one Ray task per chunk; returns (cache, failed keys).

    `cache_dir` must be visible to every node (the image store's filesystem or a shared mount).
    Small fills run in-process: a Ray task would cost more than decoding a few hundred images.
    """
    cache = ArrayCache(cache_dir, size=size, channels=channels)
    todo = cache.missing(items)
    if len(todo) <= DECODE_CHUNK:
        failed_keys = set(cache.fill(todo))
    else:
        refs = [
            _fill_chunk.remote(list(todo[i : i + DECODE_CHUNK]), cache_dir, size, channels)
            for i in range(0, len(todo), DECODE_CHUNK)
        ]
        failed_keys = {key for keys in ray.get(refs) for key in keys}
        cache.refresh()
    failed_shas = {item.sha256 for item in todo if item.key in failed_keys}
    return cache, [item.key for item in items if item.sha256 in failed_shas]


def run_cold_start(
    items: Sequence[ImageRef],
    *,
    cache_dir: str,
    input_size: int,
    input_channels: int,
    limit: int = 1000,
    seed: int = 0,
) -> ColdStartOrder:
    """The first labels' order for a pool no model has seen: `acquisition.coverage_order` on
    thumbnails. Decoding runs on Ray (`fill_cache`, which also warms the cache for the first
    training run); the ordering itself is numpy on 8x8 thumbnails, read a chunk at a time so
    a pool of large RGB images is never held whole."""
    from training.acquisition import coverage_order, thumbnails

    ensure_ray()
    cache, failed = fill_cache(items, cache_dir=cache_dir, size=input_size, channels=input_channels)
    bad = set(failed)
    kept = [it for it in items if it.key not in bad]
    thumbs = [
        thumbnails(cache.get([it.sha256 for it in kept[i : i + THUMBNAIL_CHUNK]]))
        for i in range(0, len(kept), THUMBNAIL_CHUNK)
    ]
    if not kept:
        return ColdStartOrder((), tuple(failed))
    order = coverage_order(np.concatenate(thumbs), limit=limit, seed=seed)
    return ColdStartOrder(tuple(kept[i].key for i in order), tuple(failed))
