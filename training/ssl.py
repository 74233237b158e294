"""Self-supervised pretraining of a backbone on unlabeled images: SimCLR (Chen et al. 2020).

    .venv/bin/python -m pytest tests/training/test_pretrain.py -p no:django -q

Two augmented views of every image (random resized crop, flips, colour jitter and grayscale
for RGB, all batched tensor ops: no torchvision), a projection MLP on the backbone's features,
and the NT-Xent loss that pulls the two views of an image together and pushes the other 2N-2
views of the batch away. `pretrain_arrays()` is the whole loop on in-memory uint8 arrays
(N, C, H, W): AdamW with a cosine schedule over the planned steps, a time budget, a cancel
check, throttled progress, and a resumable state written atomically after each epoch.
`training/pretrain.py` runs it as a Ray job on the project's images.

The backbone is any module with `.features(x) -> (N, D)` taking normalised float images; the
caller builds it (`make_backbone(spec)`), so this file does not know the architecture.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.batches import channel_stats
from training.collective import BUDGET, CANCELLED, GO, LOCAL, STOP_REASONS, Collective
from training.contracts import PRETRAIN_METHODS, PretrainSpec
from training.inference import bf16_ok, pick_device
from training.loop import seed_everything
from training.views import make_view

Progress = Callable[[str, float], None]
ShouldStop = Callable[[], bool]
BackboneFactory = Callable[[PretrainSpec], nn.Module]

PROGRESS_EVERY_S = 0.5  # seconds between progress calls: a progress bar needs no more
STATS_SAMPLE = 10_000  # images the input mean/std are computed from
MIN_IMAGES = 2  # NT-Xent needs another image in the batch to contrast with


# --- model and loss ------------------------------------------------------------------------


def projection_head(dim: int, out_dim: int) -> nn.Module:
    """SimCLR's projection MLP, D -> D -> out_dim; the loss is taken on its output, the
    backbone's features (before it) are what is kept."""
    return nn.Sequential(
        nn.Linear(dim, dim, bias=False),
        nn.BatchNorm1d(dim),
        nn.ReLU(inplace=True),
        nn.Linear(dim, out_dim),
    )


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent over the 2N projections: for each view the positive is the other view of the
    same image, the negatives are the 2N-2 other views of the batch."""
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits.fill_diagonal_(float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets)


def feature_dim(backbone: nn.Module, x: np.ndarray) -> int:
    """D of `backbone.features`, from one forward pass on two images (eval mode, no grad)."""
    if isinstance(getattr(backbone, "feature_dim", None), int):
        return backbone.feature_dim
    backbone.eval()
    with torch.no_grad():
        sample = torch.as_tensor(x[:2]).float()
        dim = backbone.features(sample).shape[1]
    backbone.train()
    return int(dim)


def cosine_lr(peak: float, step: int, total: int) -> float:
    """The learning rate at `step` of a cosine decay from `peak` to 0 over `total` steps."""
    return peak * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(total, 1)))


# --- resumable state -----------------------------------------------------------------------


def fingerprint(spec: PretrainSpec, x: np.ndarray) -> str:
    """What a saved state must match to be resumed: the images (their sha256 list, or the
    arrays' bytes when the spec names none) and every setting that shapes the weights.
    The epochs and the time budget are left out: a longer run continues a shorter one."""
    images = (
        hashlib.sha256("\n".join(i.sha256 for i in spec.items).encode()).hexdigest()
        if spec.items
        else hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()
    )
    keys = ("arch", "width", "stem", "method", "input_size", "input_channels", "batch_size")
    more = ("lr", "weight_decay", "temperature", "projection_dim", "flip", "seed")
    settings = {k: getattr(spec, k) for k in (*keys, *more)}
    blob = json.dumps({"images": images, **settings}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def write_atomically(obj: dict, path: str) -> None:
    """torch.save to a temporary file beside `path`, then rename: a reader (or a restarted
    run) sees the old file or the new one, never half of one."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, target)


def read_state(path: str, expected: str) -> dict | None:
    """The saved state at `path` if it exists, loads, and has the `expected` fingerprint."""
    if not path or not Path(path).is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError):
        return None  # unreadable: start over, and the first epoch replaces it
    return state if state.get("fingerprint") == expected else None


# --- the loop ------------------------------------------------------------------------------


def _check(x: np.ndarray, spec: PretrainSpec, world_size: int = 1) -> None:
    if spec.method not in PRETRAIN_METHODS:
        raise ValueError(f"pretrain method {spec.method!r} is not one of {PRETRAIN_METHODS}")
    if x.dtype != np.uint8 or x.ndim != 4:
        raise ValueError(f"images must be uint8 (N, C, H, W), got {x.dtype} {x.shape}")
    if x.shape[1] != spec.input_channels:
        raise ValueError(
            f"images have {x.shape[1]} channels but the spec says input_channels="
            f"{spec.input_channels}: decode them with the spec's channels"
        )
    if len(x) < MIN_IMAGES or spec.batch_size < 2:
        raise ValueError(
            f"SimCLR needs at least 2 images and batch_size >= 2 (got {len(x)} images, "
            f"batch_size={spec.batch_size}): each image is contrasted with the rest of its batch"
        )
    if global_batch(spec, len(x), world_size) // world_size < 2:  # BatchNorm: 2 images a rank
        raise ValueError(
            f"each of the {world_size} workers needs at least 2 images a step, and the batch "
            f"is {min(spec.batch_size, len(x))}: raise batch_size or pretrain on fewer workers"
        )
    if spec.epochs < 1 or spec.minutes <= 0:
        raise ValueError(f"epochs ({spec.epochs}) and minutes ({spec.minutes}) must be positive")


class _Throttle:
    """Calls progress("pretrain", fraction) at most every PROGRESS_EVERY_S seconds."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress, self.last = progress, -math.inf

    def __call__(self, fraction: float, *, force: bool = False) -> None:
        now = time.perf_counter()
        if self.progress and (force or now - self.last >= PROGRESS_EVERY_S):
            self.progress("pretrain", min(1.0, fraction))
            self.last = now


class SimCLR(nn.Module):
    """A backbone, its projection head, and the input normalisation (mean/std in 0..255)."""

    def __init__(
        self, backbone: nn.Module, dim: int, spec: PretrainSpec, mean: list[float], std: list[float]
    ) -> None:
        super().__init__()
        self.backbone, self.projector = backbone, projection_head(dim, spec.projection_dim)
        self.flip, self.temperature = spec.flip, spec.temperature
        self.register_buffer("scale", torch.tensor([255.0 / s for s in std]).view(1, -1, 1, 1))
        shift = [m / s for m, s in zip(mean, std, strict=True)]
        self.register_buffer("shift", torch.tensor(shift).view(1, -1, 1, 1))

    def project(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        view = make_view(xb, gen, flip=self.flip) * self.scale - self.shift
        return self.projector(self.backbone.features(view))

    def forward(self, xb: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The projections of two views of every image of `xb`."""
        return self.project(xb, gen), self.project(xb, gen)

    def loss(self, xb: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return nt_xent(*self(xb, gen), self.temperature)


@dataclass
class _Run:
    """Where a run stands; saved after each epoch and restored by a resumed run."""

    epoch: int = 0
    step: int = 0
    loss_curve: list[float] = field(default_factory=list)
    elapsed: float = 0.0  # seconds of training over every session of this run
    total: int = 1  # planned steps (epochs x steps per epoch)
    budget_s: float = math.inf
    session_started: float = field(default_factory=time.perf_counter)
    session_base: float = 0.0  # `elapsed` when this session started

    def clock(self) -> float:
        return self.session_base + time.perf_counter() - self.session_started

    def fraction(self) -> float:
        return max(self.step / self.total, self.clock() / self.budget_s)


def global_batch(spec: PretrainSpec, n: int, world_size: int = 1) -> int:
    """Images per step over all ranks: the spec's batch (at most the pool), rounded down to a
    multiple of world_size so that every rank gets an equal share."""
    batch = min(spec.batch_size, n)
    return max(world_size, batch - batch % world_size)


def _stop_code(run: _Run, should_stop: ShouldStop | None) -> int:
    if should_stop is not None and should_stop():
        return CANCELLED
    return BUDGET if run.clock() >= run.budget_s else GO


def train_one_epoch(
    net: nn.Module,
    xt: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    spec: PretrainSpec,
    gen: torch.Generator,
    run: _Run,
    throttle: _Throttle,
    should_stop: ShouldStop | None,
    views: torch.Generator | None = None,
    group: Collective = LOCAL,
) -> tuple[list[float], str]:
    """One shuffled pass in full batches; returns (losses, "epochs" | "budget" | "cancelled").

    `net` is the SimCLR module (DDP-wrapped under Ray Train). `gen` shuffles (the same on every
    rank), `views` draws the augmentations (this rank's own; `gen` when alone). Each rank
    takes its share of each global batch and the loss is NT-Xent over the whole batch."""
    net.train()
    views = views or gen
    batch = global_batch(spec, len(xt), group.world_size)
    perm = torch.randperm(len(xt), generator=gen).to(xt.device)
    autocast = torch.autocast(xt.device.type, dtype=torch.bfloat16, enabled=bf16_ok(xt.device))
    losses: list[float] = []
    for s in range(len(xt) // batch):  # the short last batch is dropped: NT-Xent wants full ones
        code = group.agree(_stop_code(run, should_stop), xt.device)
        if code != GO:
            return losses, STOP_REASONS[code]
        for param_group in optimizer.param_groups:
            param_group["lr"] = cosine_lr(spec.lr, run.step, run.total)
        with autocast:
            z1, z2 = net(xt[group.shard(perm[s * batch : (s + 1) * batch])], views)
            loss = nt_xent(group.gather(z1), group.gather(z2), spec.temperature)
        optimizer.zero_grad(set_to_none=True)
        (loss * group.world_size).backward()  # DDP averages over ranks: see Collective.gather
        optimizer.step()
        losses.append(loss.item())
        run.step += 1
        throttle(run.fraction())
    return losses, "epochs"


def _save_state(path: str, model: SimCLR, optimizer, gen, run: _Run, print_: str) -> None:
    state = {k: getattr(run, k) for k in ("epoch", "step", "loss_curve", "elapsed")}
    write_atomically(
        state
        | {
            "model": model.backbone.state_dict(),
            "projector": model.projector.state_dict(),
            "optimizer": optimizer.state_dict(),
            "generator": gen.get_state(),
            "fingerprint": print_,
        },
        path,
    )


def _restore(state: dict, model: SimCLR, optimizer, gen, run: _Run) -> None:
    model.backbone.load_state_dict(state["model"])
    model.projector.load_state_dict(state["projector"])
    optimizer.load_state_dict(state["optimizer"])
    gen.set_state(state["generator"])
    run.epoch, run.step = int(state["epoch"]), int(state["step"])
    run.loss_curve, run.elapsed = list(state["loss_curve"]), float(state["elapsed"])


def _views(spec: PretrainSpec, group: Collective, epoch: int) -> torch.Generator | None:
    """The augmentations' generator: None alone (the shuffling generator draws them, as it
    always has), else one per rank and epoch, so ranks differ and a resumed run repeats none."""
    if group.world_size == 1:
        return None
    return torch.Generator().manual_seed(spec.seed * 1_000_003 + epoch * 1_009 + group.rank)


def pretrain_arrays(
    x: np.ndarray,
    spec: PretrainSpec,
    *,
    make_backbone: BackboneFactory,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
    device: torch.device | None = None,
    group: Collective = LOCAL,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> tuple[nn.Module, dict]:
    """SimCLR on uint8 images `x` (N, C, H, W); returns (backbone in eval mode, metrics).

    Alone by default; under Ray Train every rank calls it with the same `x`, its `group`, and
    `wrap` (Ray Train's `prepare_model`: DDP). Rank 0 alone writes the resumable state.

    Stops after `spec.epochs` epochs in all (a matching state at `spec.state_path` counts its
    epochs), after `spec.minutes` of training in all, or when `should_stop()` is true (checked
    before every step); metrics["stopped"] says which: "epochs", "budget" or "cancelled".
    The loss curve holds whole epochs only (a stopped epoch's steps still count in "steps").
    """
    _check(x, spec, group.world_size)
    if spec.num_threads > 0:
        torch.set_num_threads(spec.num_threads)
    seed_everything(spec.seed)
    device = device or pick_device(spec.use_gpu)
    gen = torch.Generator().manual_seed(spec.seed)
    sample = torch.randperm(len(x), generator=gen)[:STATS_SAMPLE].sort().values.numpy()
    mean, std = channel_stats(x[sample])
    backbone = make_backbone(spec)
    model = SimCLR(backbone, feature_dim(backbone, x), spec, mean, std).to(device)
    net = wrap(model) if wrap else model
    optimizer = torch.optim.AdamW(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    print_ = fingerprint(spec, x)
    run = _Run(budget_s=spec.minutes * 60.0)
    state = read_state(spec.state_path, print_)
    if state is not None:
        _restore(state, model, optimizer, gen, run)
    run.session_base, run.session_started = run.elapsed, time.perf_counter()
    resumed_from, steps_before = run.epoch, run.step
    batch = global_batch(spec, len(x), group.world_size)
    run.total = max(1, spec.epochs * (len(x) // batch))
    xt = torch.as_tensor(x).to(device)
    throttle, stopped = _Throttle(progress), "epochs"
    throttle(run.fraction(), force=True)
    while run.epoch < spec.epochs:
        losses, stopped = train_one_epoch(
            net, xt, optimizer, spec=spec, gen=gen, run=run, throttle=throttle,
            should_stop=should_stop, views=_views(spec, group, run.epoch), group=group,
        )  # fmt: skip
        if stopped != "epochs":
            break
        run.epoch += 1
        run.loss_curve = [*run.loss_curve, float(np.mean(losses))]
        run.elapsed = run.clock()
        if spec.state_path and group.rank == 0:
            _save_state(spec.state_path, model, optimizer, gen, run, print_)
    seconds = run.clock() - run.session_base
    throttle(1.0 if stopped == "epochs" else run.fraction(), force=True)
    backbone.eval()
    return backbone, {
        "method": spec.method,
        "epochs_run": run.epoch,
        "steps": run.step,
        "images": len(x),
        "seconds": round(seconds, 3),
        "images_per_second": round((run.step - steps_before) * batch / max(seconds, 1e-9), 1),
        "workers": group.world_size,
        "loss_curve": [round(v, 5) for v in run.loss_curve],
        "stopped": stopped,
        "resumed_from_epoch": resumed_from,
        "device": str(device),
        "mean": mean,
        "std": std,
    }
