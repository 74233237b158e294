"""Pretrain a project's backbone on all of its images as a Ray job: `run_pretrain(spec)`.

    .venv/bin/python -m pytest tests/training/test_pretrain.py -p no:django -q

The driver decodes what the array cache lacks (`fill_cache`, Ray tasks for big pools), refuses
a pool with fewer than MIN_POOL decodable images, then runs `training.ssl.pretrain_arrays` in
one Ray task: every CPU of the largest node, or one GPU (and that node's CPUs) when the cluster
has GPUs and `spec.use_gpu` is not False. Where the cluster has two GPUs or more (or
`spec.num_workers` > 1 asks for it, GPUs or not), it runs instead on Ray Train's `TorchTrainer`:
one worker per GPU (CPU workers on a CPU cluster), DDP with each rank taking its share of every
global batch and the NT-Xent loss over the whole batch (`training.collective`), SyncBatchNorm on
GPUs; a lost worker restarts the group, which resumes from the last epoch's state. Progress goes
through a `ProgressBoard`; cancel too: the driver calls `board.stop()` when `should_stop()`
turns true and the task (every rank) polls `board.stopped()` every STOP_POLL_S. The backbone
file is written (atomically, by rank 0) only by a run that was not cancelled; the resumable
state at `spec.state_path` is whole after every epoch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from pathlib import Path

import ray
import torch
from torch import nn

from training.backbones import build_resnet, save_backbone
from training.cluster import cluster_gpus, ensure_ray, fill_cache, largest_node_cpus
from training.collective import LOCAL, Collective
from training.contracts import BACKBONE_ARCHS, PRETRAIN_METHODS, PretrainResult, PretrainSpec
from training.data import load_items
from training.inference import pick_device
from training.progress import RELAY_EVERY_S, Progress, board_beside_the_driver, relay, settle
from training.ssl import BackboneFactory, ShouldStop, pretrain_arrays

MIN_POOL = 16  # decodable images below which contrastive pretraining learns nothing useful
STOP_POLL_S = 1.0  # seconds between the task's reads of the board's stop flag
READ_TIMEOUT_S = 10  # seconds to wait for the board before keeping the last answer
MAX_FAILURES = 2  # worker-group restarts Ray Train allows a multi-worker run (each resumes)

# save(path, backbone, *, arch, width, stem, input_size, in_channels, mean, std, meta)
SaveBackbone = Callable[..., None]


def resnet_backbone(spec: PretrainSpec) -> nn.Module:
    """The spec's ResNet without a classifier head (`.features(x)` -> (N, D))."""
    return build_resnet(
        spec.arch,
        width=spec.width,
        stem=spec.stem,
        in_channels=spec.input_channels,
        num_classes=0,
    )


def _save_backbone(path: str, backbone: nn.Module, **fields: object) -> None:
    """The "labelloop-backbone-1" file of training.backbones."""
    save_backbone(path, backbone, **fields)


def _digest(shas: list[str]) -> str:
    return hashlib.sha256("\n".join(shas).encode()).hexdigest()


def _check(spec: PretrainSpec) -> None:
    if spec.method not in PRETRAIN_METHODS:
        raise ValueError(f"pretrain method {spec.method!r} is not one of {PRETRAIN_METHODS}")
    if spec.arch not in BACKBONE_ARCHS:
        raise ValueError(f"backbone arch {spec.arch!r} is not one of {BACKBONE_ARCHS}")
    if spec.input_channels not in (1, 3):
        raise ValueError(f"input_channels must be 1 (grey) or 3 (RGB), not {spec.input_channels}")
    if not spec.backbone_path:
        raise ValueError("backbone_path is empty: name the file the backbone is written to")


def _stop_poller(board: ray.actor.ActorHandle) -> ShouldStop:
    """should_stop() for the task: the board's stop flag, read at most every STOP_POLL_S."""
    last = {"at": -float("inf"), "stopped": False}

    def should_stop() -> bool:
        now = time.monotonic()
        if not last["stopped"] and now - last["at"] >= STOP_POLL_S:
            last["at"] = now
            # A lost read (the board's node gone, an RPC hiccup) keeps the last answer.
            with contextlib.suppress(ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                last["stopped"] = ray.get(board.stopped.remote(), timeout=READ_TIMEOUT_S)
        return last["stopped"]

    return should_stop


def pretrain_and_save(
    spec: PretrainSpec,
    failed: list[str],
    *,
    make_backbone: BackboneFactory,
    save: SaveBackbone,
    device: torch.device,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    group: Collective = LOCAL,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> PretrainResult:
    """Read the cached arrays, pretrain, and write the backbone file unless cancelled (rank 0
    writes it; the other ranks of a multi-worker run return without)."""
    x, _, _ = load_items(
        spec.items, cache_dir=spec.cache_dir, size=spec.input_size, channels=spec.input_channels
    )
    backbone, metrics = pretrain_arrays(
        x,
        spec,
        make_backbone=make_backbone,
        progress=progress,
        should_stop=should_stop,
        device=device,
        group=group,
        wrap=wrap,
    )
    mean, std = metrics.pop("mean"), metrics.pop("std")
    if metrics["stopped"] == "cancelled" or group.rank != 0:
        return PretrainResult("", metrics, tuple(failed))
    if progress:
        progress("save", 1.0)
    target = Path(spec.backbone_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    images = [item.sha256 for item in spec.items if item.key not in set(failed)]
    save(
        str(tmp),
        backbone.cpu(),
        arch=spec.arch,
        width=spec.width,
        stem=spec.stem,
        input_size=spec.input_size,
        in_channels=spec.input_channels,
        mean=mean,
        std=std,
        # Which images it saw: how many, and a digest of their content hashes in pool order
        # (a list would weigh 64 bytes an image in the file).
        meta={
            "metrics": metrics,
            "images": len(images),
            "images_sha256": _digest(images),
            "spec_seed": spec.seed,
        },
    )
    os.replace(tmp, target)  # the file appears whole or not at all
    return PretrainResult(str(target), metrics, tuple(failed))


@ray.remote
def pretrain_task(
    spec: PretrainSpec,
    failed: list[str],
    board: ray.actor.ActorHandle,
    threads: int,
    make_backbone: BackboneFactory,
    save: SaveBackbone,
) -> PretrainResult:
    """One pretraining run as a Ray task, on a GPU when it was given one."""
    torch.set_num_threads(threads)

    def post(stage: str, fraction: float) -> None:
        board.post.remote(stage, fraction)

    result = pretrain_and_save(
        spec,
        failed,
        make_backbone=make_backbone,
        save=save,
        device=pick_device(spec.use_gpu),
        progress=post,
        should_stop=_stop_poller(board),
    )
    settle(board)
    return result


def _follow(
    done: Callable[[float], bool],
    board: ray.actor.ActorHandle,
    progress: Progress | None,
    should_stop: ShouldStop | None,
) -> None:
    """Relay progress every RELAY_EVERY_S until `done(timeout)` (which waits up to `timeout`
    seconds) says the run is over; pass a cancel on once."""
    last, stop_sent = None, False
    while True:
        finished = done(RELAY_EVERY_S)
        last = relay(board, progress, last)
        if finished:
            return
        if not stop_sent and should_stop is not None and should_stop():
            board.stop.remote()
            stop_sent = True


def workers_for(spec: PretrainSpec, gpus: int) -> int:
    """How many Ray Train workers: the spec's number, or (0, auto) one per GPU where the
    cluster has two or more, else 1 (one Ray task)."""
    if spec.num_workers > 0:
        return spec.num_workers
    return gpus if gpus >= 2 else 1


def result_path(spec: PretrainSpec) -> Path:
    """Where rank 0 of a multi-worker run leaves its PretrainResult for the driver."""
    return Path(spec.backbone_path).with_name(Path(spec.backbone_path).name + ".result.json")


def pretrain_loop_per_worker(config: dict) -> None:
    """Ray Train entry: every rank pretrains its share of each batch; rank 0 posts progress,
    writes the backbone and the result file."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    group = Collective(ctx.get_world_rank(), ctx.get_world_size())
    board = config["board"]
    torch.set_num_threads(config["threads"])
    device = ray.train.torch.get_device()

    def wrap(model: nn.Module) -> nn.Module:
        if device.type == "cuda":  # batch statistics over the global batch, as SimCLR's
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return ray.train.torch.prepare_model(model)

    def post(stage: str, fraction: float) -> None:
        board.post.remote(stage, fraction)

    result = pretrain_and_save(
        config["spec"],
        config["failed"],
        make_backbone=config["make_backbone"],
        save=config["save"],
        device=device,
        progress=post if group.rank == 0 else None,
        should_stop=_stop_poller(board),
        group=group,
        wrap=wrap,
    )
    if group.rank == 0:
        answer = {"backbone_path": result.backbone_path, "metrics": result.metrics}
        tmp = result_path(config["spec"]).with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(answer | {"failed_items": list(result.failed_items)}))
        os.replace(tmp, result_path(config["spec"]))
        settle(board)
    ray.train.report({"stopped": result.metrics["stopped"]})


def _run_ray_train(
    spec: PretrainSpec,
    failed: list[str],
    board: ray.actor.ActorHandle,
    *,
    workers: int,
    gpus: int,
    threads: int,
    follow: Callable[[Callable[[float], bool]], None],
    make_backbone: BackboneFactory,
    save: SaveBackbone,
) -> PretrainResult:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    result_path(spec).unlink(missing_ok=True)  # an earlier run's answer is not this one's
    per_worker = max(1, threads // workers)
    trainer = TorchTrainer(
        pretrain_loop_per_worker,
        train_loop_config={
            "spec": spec, "failed": failed, "board": board, "threads": per_worker,
            "make_backbone": make_backbone, "save": save,
        },
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=gpus > 0, resources_per_worker={"CPU": per_worker}
        ),
        run_config=RunConfig(
            name=f"pretrain-{Path(spec.backbone_path).parent.name}",
            storage_path=str(Path(spec.backbone_path).resolve().parent / "ray_train"),
            failure_config=FailureConfig(max_failures=MAX_FAILURES),
        ),
    )  # fmt: skip
    # fit() blocks; run it beside the progress relay so the worker keeps heartbeating.
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(trainer.fit)
        follow(lambda timeout: bool(wait_futures([future], timeout=timeout).done))
        outcome = future.result()
    if outcome.error:
        raise outcome.error
    answer = json.loads(result_path(spec).read_text())
    result_path(spec).unlink(missing_ok=True)
    return PretrainResult(answer["backbone_path"], answer["metrics"], tuple(answer["failed_items"]))


def run_pretrain(
    spec: PretrainSpec,
    *,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    make_backbone: BackboneFactory = resnet_backbone,
    save: SaveBackbone = _save_backbone,
) -> PretrainResult:
    """Pretrain on Ray and write `spec.backbone_path`; `progress` and `should_stop` are called
    here, in the driver. A cancelled run returns metrics["stopped"] == "cancelled" and an empty
    backbone_path (no file written). `make_backbone` and `save` are module-level callables
    (pickled to the task): the project's ResNet and training.backbones' file by default."""
    _check(spec)
    ensure_ray()
    if progress:
        progress("cache", 0.0)
    _, failed = fill_cache(
        spec.items, cache_dir=spec.cache_dir, size=spec.input_size, channels=spec.input_channels
    )
    usable = len(spec.items) - len(failed)
    if usable < MIN_POOL:
        raise ValueError(
            f"pretraining needs at least {MIN_POOL} decodable images, the pool has {usable} "
            f"({len(failed)} could not be read): add images before pretraining a backbone"
        )
    gpus = cluster_gpus() if spec.use_gpu is not False else 0
    threads = spec.num_threads or largest_node_cpus(with_gpu=bool(gpus))
    workers = workers_for(spec, gpus)
    board = board_beside_the_driver()

    def follow(done: Callable[[float], bool]) -> None:
        _follow(done, board, progress, should_stop)

    try:
        if workers > 1:
            result = _run_ray_train(
                spec, failed, board, workers=workers, gpus=gpus, threads=threads,
                follow=follow, make_backbone=make_backbone, save=save,
            )  # fmt: skip
        else:
            task = pretrain_task.options(num_cpus=threads, num_gpus=1 if gpus else 0)
            ref = task.remote(spec, failed, board, threads, make_backbone, save)
            try:
                follow(lambda timeout: bool(ray.wait([ref], timeout=timeout)[0]))
                result = ray.get(ref)
            finally:
                ray.cancel(ref, force=True)  # a no-op once finished; frees its CPUs/GPU
    finally:
        ray.kill(board)
    if progress:
        progress("done", 1.0)
    return result
