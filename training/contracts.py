"""Plain data that crosses the boundary between the Django worker and `training/`.

Everything here is a frozen dataclass of builtins and numpy arrays, so the worker can build a
spec without importing torch or ray, and a result can be pickled across Ray processes.

    .venv/bin/python -c "from training.contracts import TrainConfig; print(TrainConfig())"
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Strategy used when a project does not choose one. "diverse" is typicality-weighted margin
# with k-center batch diversity: on dirty pools (blank frames, noise, junk) plain top-k
# uncertainty spends the budget on junk, and this one does not (tests/training/test_simulation.py).
DEFAULT_STRATEGY = "diverse"
STRATEGIES = ("random", "least_confidence", "margin", "entropy", "bald", "diverse")
# metrics["trained"] of a model that is a head on a backbone's frozen features
# (`training.rounds.head_round`): it scores from the backbone's stored embeddings, and a
# fine-tune may follow it. A fine-tuned model says "fine-tuned".
HEAD_FIT = "head on frozen backbone features"
FINE_TUNED = "fine-tuned"


@dataclass(frozen=True)
class ImageRef:
    """One image: `key` is the caller's id, `sha256` addresses the array cache, `path` the bytes."""

    key: str
    sha256: str
    path: str


@dataclass(frozen=True)
class TrainConfig:
    """How to train. The defaults beat the bare MNIST network (see docs/benchmarks.md)."""

    optimizer: str = "adamw"  # "adamw" or "sgd"; AdamW needs no lr search on small label sets
    lr: float = 3e-3  # peak learning rate of the one-cycle schedule (warm-up 10%, cosine down)
    momentum: float = 0.9  # SGD only
    weight_decay: float = 5e-4  # decoupled L2; small because the nets are small
    epochs: int = 20  # upper bound on passes over the training split
    max_steps: int = 0  # if > 0, train for exactly this many optimizer steps instead of epochs
    #                     (a 20-label round is one batch per epoch; steps keep rounds comparable)
    min_steps: int = 1000  # fewer labels than `epochs` x batches of this (under ~1,600): train
    #                       this many steps, no early stopping. Active learning lives at 20-500
    #                       labels, where 20 epochs are 20-300 steps and patience on a 5-30 image
    #                       validation set stops on noise. With 2 px shifts, 1,000 steps need
    #                       ~20% fewer labels to 90% on MNIST than 300 and ~40% fewer to 95%
    #                       (docs/benchmarks.md, "How long to train a small label set")
    batch_size: int = 32  # images per optimizer step (per worker under Ray Train); small
    #                      batches regularise the few-thousand-label sets AL produces
    val_fraction: float = 0.1  # held out from train when the spec brings no validation set
    refit: bool = True  # under a fixed step budget, measure on that split, then ship a model
    #                     trained on every label (twice the training time, on small sets only)
    patience: int = 8  # epochs without a better validation loss before early stopping
    dropout: float = 0.5  # before the head; also what MC dropout (BALD) samples
    augment_shift: int = 2  # px; random translations up to this many pixels, 0 disables
    # A random affine warp after the shifts; 0 disables each part. Mild enough for most image
    # classes; on MNIST the default reaches 90% with about a quarter fewer labels than with
    # shifts alone (docs/benchmarks.md, "Affine augmentation").
    augment_rotate: float = 12.0  # degrees, either way
    augment_scale: float = 0.1  # zoom in or out by up to this fraction
    augment_shear: float = 8.0  # degrees, either way
    balance_ratio: float = 2.0  # class-balanced sampling when max/min class count exceeds this
    label_smoothing: float = 0.0  # cross-entropy smoothing; off so probabilities stay calibrated
    num_threads: int = 0  # torch CPU threads; 0 = the CPUs Ray gave the actor (or all cores)
    amp: bool = True  # bf16/fp16 autocast on CUDA; ignored on CPU (no speed-up there)
    num_workers: int = 1  # Ray Train workers; > 1 (or distributed=True) uses TorchTrainer
    distributed: bool = False  # force the Ray Train TorchTrainer path even with one worker
    max_failures: int = 2  # Ray Train restarts of a failed worker group before giving up
    use_gpu: bool | None = None  # None: use GPUs exactly when the cluster has them
    # FixMatch (`training/semi.py`), used when the spec brings `unlabeled_items`. The defaults
    # are the measured ones (docs/benchmarks.md, "Semi-supervised training"): a pool image
    # teaches only where the model is this sure of it under the weak view (Sohn et al. 2020);
    fixmatch_threshold: float = 0.95
    fixmatch_mu: int = 3  # unlabeled images per labeled one in a step; 0: supervised only
    fixmatch_weight: float = 1.0  # the consistency loss's weight beside the labeled batch's


@dataclass(frozen=True)
class TrainSpec:
    classes: tuple[str, ...]
    input_size: int  # square side in pixels the model sees
    input_channels: int  # 1 (L) or 3 (RGB)
    items: tuple[ImageRef, ...]
    labels: tuple[int, ...]  # index into `classes`, one per item
    cache_dir: str
    checkpoint_path: str  # where the checkpoint is written (atomically)
    val_items: tuple[ImageRef, ...] = ()  # held-out set; empty -> split `val_fraction` off train
    val_labels: tuple[int, ...] = ()
    # A sample of the pool nobody labeled: non-empty -> semi-supervised (FixMatch) training
    # with the same steps. Images that cannot be decoded are left out, never a failed run.
    unlabeled_items: tuple[ImageRef, ...] = ()
    arch: str = "seed_cnn"
    # A fine-tune: train every layer of this checkpoint's model (a backbone with the head a
    # round fitted on its frozen features) instead of a fresh `arch`. "" trains from scratch.
    init_checkpoint: str = ""
    config: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0


@dataclass(frozen=True)
class TrainResult:
    checkpoint_path: str
    # JSON-serialisable: accuracy, per_class, confusion, ece, n_train, n_val, epochs_run,
    # seconds, plus loss curves and the device it ran on.
    metrics: dict
    failed_items: tuple[str, ...] = ()  # keys of missing or undecodable images (skipped)


@dataclass(frozen=True)
class ScoreSpec:
    checkpoint_path: str
    items: tuple[ImageRef, ...]
    cache_dir: str
    strategy: str = DEFAULT_STRATEGY
    batch_size: int = 256  # images per inference call
    mc_samples: int = 20  # dropout samples for "bald"
    sample_fraction: float | None = None  # score a random subset of a very large pool
    select_size: int = 0  # > 0: order the first `select_size` as one diverse acquisition batch
    exploration_fraction: float = 0.0  # share of that batch drawn uniformly at random
    # Keys that may be acquired (the unlabeled pool) when `items` also holds labeled images:
    # the others rank after every candidate, and the batch avoids near-copies of them.
    candidates: tuple[str, ...] | None = None
    seed: int = 0
    # "typical": the batch is TypiClust's typical picks, "uncertain": `strategy`'s (the
    # hand-over rule, `training.handover.picker`, decides which for a round).
    picker: str = "uncertain"
    # Pools smaller than this are scored by one Ray task instead of a Ray Data actor pool:
    # tasks run in worker processes Ray keeps warm between rounds, while a pool pays ~5 s of
    # actor start-up (import torch, load the checkpoint) for ~1 s of inference at 10k images.
    inline_below: int = 20_000


@dataclass(frozen=True, eq=False)
class ScoreResult:
    """Per scored item, aligned by row. Items skipped by sampling are absent, failures listed."""

    keys: tuple[str, ...]
    predicted: np.ndarray  # (N,) int64 class index
    confidence: np.ndarray  # (N,) float32 max probability
    probabilities: np.ndarray  # (N, C) float32
    scores: np.ndarray  # (N,) float32 acquisition score, higher = more informative
    embeddings: np.ndarray  # (N, D) float16 penultimate-layer features (half the memory)
    priority: np.ndarray  # (N,) int64 position in the labeling queue, 0 = label first
    failed_items: tuple[str, ...] = ()
    seconds: float = 0.0
    # The model's classes, in the order of `predicted` and `probabilities`: those it was
    # trained on, which need not be the project's classes now (a class added or reordered).
    classes: tuple[str, ...] = ()
    picker: str = "uncertain"  # what picked the acquisition batch: "typical" or "uncertain"


@dataclass(frozen=True)
class ColdStartOrder:
    keys: tuple[str, ...]  # every decodable item, most useful first
    failed_items: tuple[str, ...] = ()


# --- Backbones (issue 25): learned from the project's own images, or imported ----------------

BACKBONE_ARCHS = ("resnet18", "resnet50")
PRETRAIN_METHODS = ("simclr",)


@dataclass(frozen=True)
class PretrainSpec:
    """Self-supervised training of a backbone on every image of a project (`training.ssl`).

    Stops at whichever comes first: `epochs` passes, `minutes` of training, or `should_stop`
    (cancel). `state_path` holds a resumable state written atomically after each epoch; a
    restarted run with the same spec continues from it instead of starting over."""

    items: tuple[ImageRef, ...]
    cache_dir: str
    input_size: int
    input_channels: int
    backbone_path: str  # where the finished backbone file is written (atomically)
    state_path: str  # resumable training state (atomically replaced after each epoch)
    arch: str = "resnet18"
    stem: str = "small"  # "small": 3x3 stride-1 stem, no max-pool (<= 64 px); "imagenet": 7x7/2
    width: int = 16  # channels of the first stage (torchvision's ResNet-18 is 64)
    method: str = "simclr"
    epochs: int = 30
    minutes: float = 60.0  # time budget for training (not counting decoding)
    batch_size: int = 256
    lr: float = 1e-3  # AdamW
    weight_decay: float = 1e-4
    temperature: float = 0.2
    projection_dim: int = 128
    flip: bool = True  # horizontal flips in the views (off for text, digits)
    num_threads: int = 0
    use_gpu: bool | None = None
    seed: int = 0
    # Ray Train workers (DDP): 0 = one per GPU where the cluster has 2+, else one Ray task.
    num_workers: int = 0


@dataclass(frozen=True)
class PretrainResult:
    backbone_path: str
    # JSON-serialisable: method, epochs_run, steps, images, seconds, images_per_second,
    # loss_curve (per epoch), stopped ("epochs" | "budget" | "cancelled"), resumed_from_epoch.
    metrics: dict
    failed_items: tuple[str, ...] = ()


@dataclass(frozen=True)
class EmbedSpec:
    """Features of every item from a backbone file (`training.embed`)."""

    backbone_path: str
    items: tuple[ImageRef, ...]
    cache_dir: str
    input_size: int
    input_channels: int
    batch_size: int = 256


@dataclass(frozen=True, eq=False)
class EmbedResult:
    keys: tuple[str, ...]
    embeddings: np.ndarray  # (N, D) float16, aligned with keys
    failed_items: tuple[str, ...] = ()
    seconds: float = 0.0
