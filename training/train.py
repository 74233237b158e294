"""Train a classifier on labeled images: `fit()` on arrays, `run_training()` on a Ray cluster.

    .venv/bin/python -m pytest tests/training/test_train.py -p no:django -q

`run_training(spec)` fills the array cache, then trains in one Ray task (num_gpus=1 when the
cluster has GPUs, CPU otherwise: the same code) or, when `config.num_workers > 1` or
`config.distributed`, with Ray Train's TorchTrainer (DDP over `num_workers`, restarts on
failure). Both call `train_from_arrays()`, which calls `fit()`, which is what the
active-learning simulations call directly on in-memory arrays. `fit()` is assembled from
`training/loop.py` (step budget, optimizer, one epoch, early stopping); the driver follows a
run through `training/progress.py`. A spec with `unlabeled_items` trains semi-supervised
(FixMatch, `training/semi.py`) on the same steps, on either path.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import ray
import torch
from torch import nn

from training.batches import channel_stats, stratified_split
from training.cluster import cluster_gpus, ensure_ray, fill_cache, largest_node_cpus
from training.contracts import TrainConfig, TrainResult, TrainSpec
from training.data import ArrayCache
from training.inference import evaluate, pick_device
from training.loop import (
    EarlyStopping,
    build_optimizer,
    grad_scaler,
    seed_everything,
    step_budget,
    train_one_epoch,
)
from training.models import (
    BACKBONE_CLASSIFIER,
    Classifier,
    build_model,
    checkpoint_meta,
    load_checkpoint,
    save_checkpoint,
)
from training.progress import (
    Progress,
    board_beside_the_driver,
    follow_future,
    follow_task,
    settle,
)
from training.semi import FixMatch

DEFAULT_CONFIG = TrainConfig()


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    *,
    classes: tuple[str, ...],
    arch: str = "seed_cnn",
    config: TrainConfig = DEFAULT_CONFIG,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    device: torch.device | None = None,
    progress: Progress | None = None,
    rank: int = 0,
    world_size: int = 1,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
    unlabeled: np.ndarray | None = None,
    init: Classifier | None = None,
) -> tuple[Classifier, dict]:
    """Train on uint8 arrays (N, C, H, W); returns (best model on val, metrics).

    Early stopping watches validation loss when a validation set is given; without one the
    model trains for the full budget and the metrics are computed on the training set.
    `wrap` is Ray Train's `prepare_model` under TorchTrainer (DDP); identity otherwise.
    `unlabeled` (uint8 arrays of pool images nobody labeled) makes it FixMatch, with the same
    step budget (`training/semi.py`); the metrics then say so under "fixmatch".
    `init` (a fine-tune): train a copy of this model - all of it, its own normalisation -
    instead of a fresh `arch`; `init` itself is left as it was.
    """
    started = time.perf_counter()
    seed_everything(seed)
    device = device or pick_device(config.use_gpu)
    model = starting_model(x_train, arch=arch, classes=classes, config=config, init=init)
    model = model.to(device)
    net = wrap(model) if wrap else model
    xt = torch.as_tensor(x_train).to(device)
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.long).to(device)
    has_val = x_val is not None and y_val is not None and len(y_val) > 0

    budget = step_budget(len(yt), config, world_size)
    optimizer, scheduler = build_optimizer(net.parameters(), config, total_steps=budget.total_steps)
    scaler = grad_scaler(config, device)
    gen = torch.Generator().manual_seed(seed)
    semi = FixMatch.for_rank(unlabeled, config, device=device, rank=rank, world_size=world_size)
    stopping = EarlyStopping(config.patience)
    history: dict[str, list[float]] = {"train_loss": [], "val_loss": [], "val_accuracy": []}
    steps_done = epochs_run = 0
    for epoch in range(budget.epochs):
        loss, steps = train_one_epoch(
            net, xt, yt, optimizer=optimizer, scheduler=scheduler, scaler=scaler, config=config,
            gen=gen, max_steps=budget.total_steps - steps_done, rank=rank, world_size=world_size,
            semi=semi,
        )  # fmt: skip
        steps_done += steps
        epochs_run = epoch + 1
        history["train_loss"].append(loss)
        if has_val and not budget.fixed:
            val = evaluate(model, x_val, y_val, classes)
            history["val_loss"].append(val["loss"])
            history["val_accuracy"].append(val["accuracy"])
            stopping.update(model, val["loss"])
        if progress:
            progress("train", epochs_run / budget.epochs)
        if (has_val and stopping.exhausted) or steps_done >= budget.total_steps:
            break
    stopping.restore_best(model)
    model.eval()
    x_eval, y_eval, evaluated_on = (x_val, y_val, "val") if has_val else (xt, y_train, "train")
    return model, evaluate(model, x_eval, y_eval, classes) | {
        "evaluated_on": evaluated_on,
        "n_train": len(y_train),
        "n_val": len(y_val) if has_val else 0,
        "epochs_run": epochs_run,
        "steps": steps_done,
        "seconds": round(time.perf_counter() - started, 3),
        "device": str(device),
        "world_size": world_size,
        "history": history,
    } | ({"fixmatch": semi.metrics()} if semi else {})


def starting_model(
    x: np.ndarray,
    *,
    arch: str,
    classes: tuple[str, ...],
    config: TrainConfig,
    init: Classifier | None,
) -> Classifier:
    """A copy of `init` to fine-tune (with the recipe's dropout, which BALD samples later), or
    a fresh `arch` for these arrays."""
    if init is None:
        return model_for(x, arch=arch, num_classes=len(classes), dropout=config.dropout)
    model = copy.deepcopy(init).train()
    model.dropout.p = config.dropout
    return model


def model_for(x: np.ndarray, *, arch: str, num_classes: int, dropout: float) -> Classifier:
    """A fresh `arch` sized from the arrays (N, C, H, W) and normalised by their statistics."""
    _, channels, size, _ = x.shape
    mean, std = channel_stats(x)
    return build_model(
        arch,
        num_classes=num_classes,
        input_size=size,
        input_channels=channels,
        dropout=dropout,
        mean=mean,
        std=std,
    )


def train_from_arrays(
    spec: TrainSpec,
    failed: list[str],
    *,
    device: torch.device,
    progress: Progress | None = None,
    rank: int = 0,
    world_size: int = 1,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> TrainResult:
    """Read the cached arrays for `spec`, fit, and (on rank 0) write the checkpoint."""
    if progress:
        progress("load", 0.0)
    cache = ArrayCache(spec.cache_dir, size=spec.input_size, channels=spec.input_channels)
    bad = set(failed)
    train_pos = [i for i, it in enumerate(spec.items) if it.key not in bad]
    val_pos = [i for i, it in enumerate(spec.val_items) if it.key not in bad]
    x = cache.get([spec.items[i].sha256 for i in train_pos])
    y = np.array(spec.labels, dtype=np.int64)[train_pos]
    x_all, y_all = x, y
    refit = False
    if spec.val_items:
        x_val = cache.get([spec.val_items[i].sha256 for i in val_pos])
        y_val = np.array(spec.val_labels, dtype=np.int64)[val_pos]
    else:
        tr, va = stratified_split(y, spec.config.val_fraction, spec.seed)
        x, x_val, y, y_val = x[tr], x[va], y[tr], y[va]
        # With a fixed step budget the split stops nothing: it only measures. Then the model
        # that ships is trained again on every label - the split's share is not wasted on
        # the few-label rounds where each label counts most.
        fixed = step_budget(len(tr), spec.config, world_size).fixed
        refit = spec.config.refit and len(va) > 0 and fixed
    common = dict(
        classes=spec.classes,
        arch=spec.arch,
        config=spec.config,
        seed=spec.seed,
        device=device,
        rank=rank,
        world_size=world_size,
        wrap=wrap,
        unlabeled=_unlabeled_arrays(spec, cache, bad),
        init=load_checkpoint(spec.init_checkpoint)[0] if spec.init_checkpoint else None,
    )
    half = (lambda s, f: progress(s, f / 2)) if progress and refit else progress
    model, metrics = fit(x, y, x_val=x_val, y_val=y_val, progress=half, **common)
    if refit:
        second = (lambda s, f: progress(s, 0.5 + f / 2)) if progress else None
        model, final = fit(x_all, y_all, progress=second, **common)
        # The metrics stay the split model's: an estimate (slightly low) for the refit one.
        metrics |= {
            "refit_on_all": True,
            "n_train": final["n_train"],
            "seconds": round(metrics["seconds"] + final["seconds"], 3),
        }
    labeled_failed = _labeled_failures(spec, failed)
    metrics["failed"] = len(labeled_failed)
    if spec.unlabeled_items:  # undecodable pool images are left out, not failures of the run
        metrics["unlabeled_failed"] = len(failed) - len(labeled_failed)
    if rank == 0:
        if progress:
            progress("checkpoint", 1.0)
        meta = checkpoint_meta(
            model,
            arch=BACKBONE_CLASSIFIER if spec.init_checkpoint else spec.arch,
            classes=spec.classes,
            input_size=spec.input_size,
            input_channels=spec.input_channels,
            dropout=spec.config.dropout,
            metrics=metrics,
            config=spec.config,
            seed=spec.seed,
        )
        save_checkpoint(spec.checkpoint_path, model, meta)
    return TrainResult(spec.checkpoint_path, metrics, tuple(labeled_failed))


def _unlabeled_arrays(spec: TrainSpec, cache: ArrayCache, bad: set[str]) -> np.ndarray | None:
    """The decodable part of the spec's unlabeled sample (None: a supervised round)."""
    shas = [it.sha256 for it in spec.unlabeled_items if it.key not in bad]
    return cache.get(shas) if shas else None


def _labeled_failures(spec: TrainSpec, failed: list[str]) -> list[str]:
    """The failed keys that are labeled (or validation) images: what the run reports."""
    unlabeled = {it.key for it in spec.unlabeled_items}
    return [key for key in failed if key not in unlabeled]


@ray.remote
def train_task(
    spec: TrainSpec, failed: list[str], board: ray.actor.ActorHandle, threads: int
) -> TrainResult:
    """One training run as a Ray task (a GPU when the cluster has one). A task, not an actor:
    Ray keeps task worker processes warm, so the next round does not import torch again."""
    torch.set_num_threads(threads)

    def post(stage: str, fraction: float) -> None:
        board.post.remote(stage, fraction)

    result = train_from_arrays(spec, failed, device=pick_device(spec.config.use_gpu), progress=post)
    settle(board)
    return result


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry: DDP over the worker group; rank 0 writes the checkpoint."""
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world_size = ctx.get_world_rank(), ctx.get_world_size()
    board = config["board"]
    torch.set_num_threads(config["threads"])

    def post(stage: str, fraction: float) -> None:
        if rank == 0:
            board.post.remote(stage, fraction)

    result = train_from_arrays(
        config["spec"],
        config["failed"],
        device=ray.train.torch.get_device(),
        progress=post,
        rank=rank,
        world_size=world_size,
        wrap=ray.train.torch.prepare_model,
    )
    if rank == 0:
        settle(board)
    ray.train.report(result.metrics)


def _check(spec: TrainSpec) -> None:
    if len(spec.items) != len(spec.labels):
        raise ValueError(f"{len(spec.items)} items but {len(spec.labels)} labels")
    if len(spec.val_items) != len(spec.val_labels):
        raise ValueError(f"{len(spec.val_items)} val items but {len(spec.val_labels)} labels")
    k = len(spec.classes)
    if any(not 0 <= label < k for label in (*spec.labels, *spec.val_labels)):
        raise ValueError(f"labels must index the {k} classes")


def run_training(spec: TrainSpec, *, progress: Progress | None = None) -> TrainResult:
    """Train on Ray and write `spec.checkpoint_path`; `progress` is called here, in the driver."""
    _check(spec)
    ensure_ray()
    if progress:
        progress("cache", 0.0)
    _, failed = fill_cache(
        (*spec.items, *spec.val_items, *spec.unlabeled_items),
        cache_dir=spec.cache_dir,
        size=spec.input_size,
        channels=spec.input_channels,
    )
    if len(_labeled_failures(spec, failed)) == len(spec.items) + len(spec.val_items):
        raise ValueError("no image in the training set could be read")
    config = spec.config
    gpus = cluster_gpus() if config.use_gpu is not False else 0
    threads = config.num_threads or largest_node_cpus(with_gpu=bool(gpus))
    board = board_beside_the_driver()
    if config.num_workers > 1 or config.distributed:
        try:
            result = _run_ray_train(spec, failed, board, gpus, threads, progress)
        finally:
            ray.kill(board)
    else:
        task = train_task.options(num_cpus=threads, num_gpus=1 if gpus else 0)
        ref = task.remote(spec, failed, board, threads)
        try:
            follow_task(ref, board, progress)
            result = ray.get(ref)
        finally:
            ray.cancel(ref, force=True)  # a no-op once finished; frees its CPUs/GPU otherwise
            ray.kill(board)
    if progress:
        progress("done", 1.0)
    return result


def _run_ray_train(
    spec: TrainSpec,
    failed: list[str],
    board: ray.actor.ActorHandle,
    gpus: int,
    threads: int,
    progress: Progress | None,
) -> TrainResult:
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    config = spec.config
    use_gpu = gpus > 0
    per_worker_cpus = max(1, threads // config.num_workers) if not use_gpu else 1
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "spec": spec,
            "failed": failed,
            "board": board,
            "threads": per_worker_cpus,
        },
        scaling_config=ScalingConfig(
            num_workers=config.num_workers,
            use_gpu=use_gpu,
            resources_per_worker={"CPU": per_worker_cpus},
        ),
        run_config=RunConfig(
            name=f"train-{Path(spec.checkpoint_path).stem}",
            storage_path=str(Path(spec.checkpoint_path).resolve().parent / "ray_train"),
            failure_config=FailureConfig(max_failures=config.max_failures),
        ),
    )
    # fit() blocks; run it beside the progress relay so the worker keeps heartbeating.
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(trainer.fit)
        follow_future(future, board, progress)
        result = future.result()
    if result.error:
        raise result.error
    # Ray Train v2 keeps reported metrics only alongside Ray checkpoints; rank 0 already wrote
    # ours, with the metrics inside, to the shared path.
    metrics = load_checkpoint(spec.checkpoint_path)[1]["metrics"]
    return TrainResult(spec.checkpoint_path, metrics, tuple(_labeled_failures(spec, failed)))
