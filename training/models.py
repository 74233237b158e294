"""Model registry and checkpoints.

    .venv/bin/python -c "from training.models import build_model; print(build_model('seed_cnn', \
num_classes=10, input_size=28, input_channels=1))"

Every model is a `Classifier`: normalise -> trunk -> embedding (N, D) -> dropout -> linear.
The split matters: scoring returns the embedding for diversity, and BALD runs the trunk once
and samples dropout masks only in the head (`mc_probabilities`).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.contracts import TrainConfig

CHECKPOINT_FORMAT = 1
# What `load_checkpoint` rebuilds a model from; `save_checkpoint` refuses a meta without them.
SPEC_KEYS = ("arch", "classes", "input_size", "input_channels", "dropout", "mean", "std")


class Normalize(nn.Module):
    """uint8 (or float) pixels in 0..255 -> zero-mean unit-variance floats, per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.std


class Classifier(nn.Module):
    def __init__(
        self,
        trunk: nn.Module,
        embed_dim: int,
        num_classes: int,
        *,
        dropout: float,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.trunk = trunk
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(embed_dim, num_classes)
        self.embed_dim = embed_dim
        self.num_classes = num_classes

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features, (N, D)."""
        return self.trunk(self.normalize(x))

    def head(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(emb))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def dropout_masks(self, samples: int, seed: int) -> torch.Tensor:
        """T fixed head masks, (T, D), already scaled by 1/keep like nn.Dropout.

        One set per model and seed, shared by every item: each item still sees T independent
        masks (all BALD needs), and an item's score no longer depends on which batch or Ray
        actor it landed in, so scoring is reproducible however the pool is partitioned.
        """
        keep = 1.0 - self.dropout.p
        gen = torch.Generator().manual_seed(seed)
        masks = torch.bernoulli(torch.full((samples, self.embed_dim), keep), generator=gen)
        return masks / keep if keep > 0 else masks

    def mc_probabilities(self, emb: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(T, N, C) softmax outputs under T dropout masks; costs T tiny matmuls, no trunk."""
        weight = self.fc.weight.float()  # (C, D)
        masked = masks.to(emb.device)[:, None, :] * weight[None]  # (T, C, D)
        logits = torch.einsum("nd,tcd->tnc", emb.float(), masked) + self.fc.bias.float()
        return F.softmax(logits, dim=-1)


def seed_cnn(
    *, num_classes: int, input_size: int, input_channels: int, dropout: float, **norm: list[float]
) -> Classifier:
    """The classic Keras MNIST network, sized from the input: conv32-pool-conv64-pool-dense."""
    side = ((input_size - 2) // 2 - 2) // 2
    if side < 1:
        raise ValueError(f"seed_cnn needs input_size >= 10, got {input_size}")
    trunk = nn.Sequential(
        nn.Conv2d(input_channels, 32, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
    )
    return Classifier(trunk, 64 * side * side, num_classes, dropout=dropout, **norm)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x), inplace=True)


def resnet_small(
    *, num_classes: int, input_size: int, input_channels: int, dropout: float, **norm: list[float]
) -> Classifier:
    """ResNet-10 style (2 blocks at widths 32-64-128-256) for larger RGB images.

    The stem keeps full resolution up to 64 px (CIFAR-style) and downsamples by 4 above that
    (ImageNet-style), so 224 px photos cost about what 56 px ones do.
    """
    if input_size >= 96:
        stem = [nn.Conv2d(input_channels, 32, 7, 2, 3, bias=False), nn.BatchNorm2d(32)]
        stem += [nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1)]
    else:
        stem = [nn.Conv2d(input_channels, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32)]
        stem += [nn.ReLU(inplace=True)]
    widths = (32, 64, 128, 256)
    blocks: list[nn.Module] = []
    cin = 32
    for i, width in enumerate(widths):
        stride = 1 if i == 0 else 2
        blocks += [BasicBlock(cin, width, stride), BasicBlock(width, width, 1)]
        cin = width
    trunk = nn.Sequential(*stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return Classifier(trunk, widths[-1], num_classes, dropout=dropout, **norm)


MODELS: dict[str, Callable[..., Classifier]] = {"seed_cnn": seed_cnn, "resnet_small": resnet_small}


def build_model(
    arch: str,
    *,
    num_classes: int,
    input_size: int,
    input_channels: int,
    dropout: float = 0.5,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    if arch not in MODELS:
        raise ValueError(f"unknown arch {arch!r}; known: {sorted(MODELS)}")
    return MODELS[arch](
        num_classes=num_classes,
        input_size=input_size,
        input_channels=input_channels,
        dropout=dropout,
        mean=list(mean) if mean is not None else [127.5] * input_channels,
        std=list(std) if std is not None else [127.5] * input_channels,
    )


def library_versions() -> dict[str, str]:
    import ray  # imported here: reading a checkpoint should not need Ray started

    return {
        "python": platform.python_version(),
        "torch": str(torch.__version__),
        "numpy": str(np.__version__),
        "ray": str(ray.__version__),
    }


def checkpoint_meta(
    model: Classifier,
    *,
    arch: str,
    classes: Sequence[str],
    input_size: int,
    input_channels: int,
    dropout: float,
    metrics: dict | None = None,
    config: TrainConfig | None = None,
    seed: int | None = None,
) -> dict:
    """What a checkpoint stores beside the weights: the `SPEC_KEYS` that `load_checkpoint`
    rebuilds the model from (mean and std read from `model`), then metrics, the training
    config and seed when given; absent ones are left out, not stored as None."""
    meta = {
        "arch": arch,
        "classes": list(classes),
        "input_size": input_size,
        "input_channels": input_channels,
        "dropout": dropout,
        "mean": model.normalize.mean.flatten().tolist(),
        "std": model.normalize.std.flatten().tolist(),
    }
    if metrics is not None:
        meta["metrics"] = metrics
    if config is not None:
        meta["config"] = asdict(config)
    if seed is not None:
        meta["seed"] = seed
    return meta


def save_checkpoint(path: str, model: Classifier, meta: dict) -> None:
    """Weights plus everything needed to use them (`checkpoint_meta`); written to a temp file,
    then renamed."""
    missing = [k for k in SPEC_KEYS if k not in meta]
    if missing:
        raise ValueError(f"checkpoint meta lacks {missing}")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    payload = {
        "format": CHECKPOINT_FORMAT,
        "meta": {**meta, "versions": library_versions(), "saved_at": time.time()},
        "state_dict": state,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, target)


def load_checkpoint(path: str, device: str | torch.device = "cpu") -> tuple[Classifier, dict]:
    """(model in eval mode on `device`, meta). weights_only: a checkpoint cannot run code."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {payload.get('format')} is not supported")
    meta = payload["meta"]
    model = build_model(
        meta["arch"],
        num_classes=len(meta["classes"]),
        input_size=meta["input_size"],
        input_channels=meta["input_channels"],
        dropout=meta["dropout"],
        mean=meta["mean"],
        std=meta["std"],
    )
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), meta
