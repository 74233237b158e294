"""Model registry and checkpoints.

    .venv/bin/python -c "from training.models import build_model; print(build_model('seed_cnn', \
num_classes=10, input_size=28, input_channels=1))"

Every model is a `Classifier`: normalise -> trunk -> embedding (N, D) -> dropout -> linear.
The split matters: scoring returns the embedding for diversity, and BALD runs the trunk once
and samples dropout masks only in the head (`mc_probabilities`). "resnet18" and "resnet50"
take the options `width` and `stem` (`training.backbones`), kept in a checkpoint's
meta["arch_options"]; `classifier_from_backbone` puts a head on a project backbone (arch
"backbone", its normalisation inside the trunk).
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

from training.backbones import Backbone, build_resnet, trunk_copy
from training.contracts import BACKBONE_ARCHS, TrainConfig

CHECKPOINT_FORMAT = 1
# What `load_checkpoint` rebuilds a model from; `save_checkpoint` refuses a meta without them.
SPEC_KEYS = ("arch", "classes", "input_size", "input_channels", "dropout", "mean", "std")
# The arch of a classifier on a project backbone (`classifier_from_backbone`): not built from
# nothing by `build_model`, rebuilt by `load_checkpoint` from meta["arch_options"].
BACKBONE_CLASSIFIER = "backbone"
BACKBONE_OPTIONS = ("arch", "width", "stem", "input_size", "in_channels")


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
        self.arch_options: dict = {}  # what build_model needs besides the spec (checkpoint_meta)

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


def _torchvision_resnet(arch: str) -> Callable[..., Classifier]:
    def build(
        *,
        num_classes: int,
        input_size: int,
        input_channels: int,
        dropout: float,
        width: int = 64,
        stem: str | None = None,
        **norm: list[float],
    ) -> Classifier:
        # Without a stem named, the rule of resnet_small: full resolution up to 64 px photos.
        stem = stem or ("imagenet" if input_size >= 96 else "small")
        resnet = build_resnet(
            arch, width=width, stem=stem, in_channels=input_channels, num_classes=0
        )
        ones = [1.0] * input_channels  # the Classifier normalises; the trunk passes through
        trunk = Backbone(resnet, mean=[0.0] * input_channels, std=ones)
        return Classifier(trunk, resnet.embed_dim, num_classes, dropout=dropout, **norm)

    build.__doc__ = f"torchvision's {arch} layout (`training.backbones`); options width, stem."
    return build


MODELS: dict[str, Callable[..., Classifier]] = {
    "seed_cnn": seed_cnn,
    "resnet_small": resnet_small,
    **{arch: _torchvision_resnet(arch) for arch in BACKBONE_ARCHS},
}
ARCH_OPTIONS = {arch: ("width", "stem") for arch in BACKBONE_ARCHS}


def build_model(
    arch: str,
    *,
    num_classes: int,
    input_size: int,
    input_channels: int,
    dropout: float = 0.5,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    **options: object,
) -> Classifier:
    """A fresh `arch`; `options` are the arch's own (ARCH_OPTIONS), e.g. width=16."""
    if arch == BACKBONE_CLASSIFIER:
        raise ValueError(f"arch {arch!r} is built by classifier_from_backbone from a backbone")
    if arch not in MODELS:
        raise ValueError(f"unknown arch {arch!r}; known: {sorted(MODELS)}")
    unknown = sorted(set(options) - set(ARCH_OPTIONS.get(arch, ())))
    if unknown:
        raise ValueError(
            f"arch {arch!r} takes no option {unknown}; it takes {list(ARCH_OPTIONS.get(arch, ()))}"
        )
    model = MODELS[arch](
        num_classes=num_classes,
        input_size=input_size,
        input_channels=input_channels,
        dropout=dropout,
        mean=list(mean) if mean is not None else [127.5] * input_channels,
        std=list(std) if std is not None else [127.5] * input_channels,
        **options,
    )
    model.arch_options = dict(options)
    return model


def classifier_from_backbone(
    backbone: Backbone,
    info: dict,
    *,
    classes: Sequence[str],
    dropout: float = 0.0,
    head_weight: torch.Tensor | None = None,
    head_bias: torch.Tensor | None = None,
    unit_features: bool = False,
) -> Classifier:
    """A classifier whose `embed` is `backbone` (a copy, without its ImageNet head) and whose
    head starts from `head_weight` (C, D) / `head_bias` (C,) when given (a fitted probe).
    `unit_features`: the trunk scales features to unit length, as `training.head.fit_head`
    fits its heads.

    `info` is `load_backbone`'s; its layout must be the backbone's. Save it with
    `checkpoint_meta(model, arch=BACKBONE_CLASSIFIER, ...)` and `save_checkpoint`."""
    options = {k: backbone.info()[k] for k in BACKBONE_OPTIONS}
    differs = {k: (info.get(k), v) for k, v in options.items() if info.get(k, v) != v}
    if differs:
        raise ValueError(f"info does not describe this backbone: (info, backbone) {differs}")
    trunk = trunk_copy(backbone)
    trunk.unit_features = unit_features
    # The trunk normalises with the backbone's own statistics; the Classifier's is identity.
    model = Classifier(trunk, trunk.embed_dim, len(classes), dropout=dropout, mean=[0.0], std=[1.0])
    with torch.no_grad():
        for name, given in (("weight", head_weight), ("bias", head_bias)):
            if given is None:
                continue
            own = getattr(model.fc, name)
            if tuple(given.shape) != tuple(own.shape):
                raise ValueError(
                    f"head_{name} is {tuple(given.shape)}; {len(classes)} classes on "
                    f"{trunk.embed_dim}-d features need {tuple(own.shape)}"
                )
            own.copy_(given)
    model.arch_options = options | ({"unit_features": True} if unit_features else {})
    return model


def _backbone_classifier_shell(meta: dict) -> Classifier:
    """An untrained `classifier_from_backbone` model of the checkpoint's layout, to load into."""
    opts = meta["arch_options"]
    resnet = build_resnet(
        opts["arch"],
        width=opts["width"],
        stem=opts["stem"],
        in_channels=opts["in_channels"],
        num_classes=0,
    )
    channels = opts["in_channels"]
    trunk = Backbone(
        resnet, mean=[0.0] * channels, std=[1.0] * channels, input_size=opts["input_size"]
    )
    trunk.unit_features = bool(opts.get("unit_features", False))
    model = Classifier(
        trunk,
        resnet.embed_dim,
        len(meta["classes"]),
        dropout=meta["dropout"],
        mean=meta["mean"],
        std=meta["std"],
    )
    model.arch_options = dict(opts)
    return model


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
    if model.arch_options:
        meta["arch_options"] = dict(model.arch_options)
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
    if meta["arch"] == BACKBONE_CLASSIFIER:
        model = _backbone_classifier_shell(meta)
    else:
        model = build_model(
            meta["arch"],
            num_classes=len(meta["classes"]),
            input_size=meta["input_size"],
            input_channels=meta["input_channels"],
            dropout=meta["dropout"],
            mean=meta["mean"],
            std=meta["std"],
            **meta.get("arch_options", {}),
        )
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), meta
