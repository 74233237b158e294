"""ResNet-18/50 in torchvision's `state_dict` layout, and project backbone files.

    .venv/bin/python -m pytest tests/training/test_backbones.py -q -p no:django

`ResNet` names its weights exactly as torchvision does (conv1, bn1, layer1.0.conv1.weight,
layer1.0.downsample.0.weight, ..., fc.weight), so a published torchvision `.pth` loads with
`load_torchvision_state` without torchvision installed. `width` scales every stage (64 is
torchvision's), and the "small" stem (3x3 stride-1 conv, no max-pool) keeps the key names for
32-64 px photos. `Backbone` wraps a ResNet for a project: normalisation, channel adaptation and
resizing in front of the pooled features. A backbone file ("labelloop-backbone-1") is one
torch file with the weights and everything needed to rebuild the `Backbone`.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.contracts import BACKBONE_ARCHS
from training.weights import WeightsError, read_state_dict

BACKBONE_FORMAT = "labelloop-backbone-1"
STEMS = ("imagenet", "small")
# Torchvision's ImageNet normalisation, in 0..255 pixel units (its (0.485, ...) x 255).
IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
# (block, blocks per stage) of the ResNets torchvision publishes; only BACKBONE_ARCHS are built,
# the others are named in error messages when a user brings one.
KNOWN_RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}


class BackboneLayoutError(ValueError):
    """A state_dict that does not fit the ResNet it was meant for."""


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = _downsample(cin, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip, inplace=True)


class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 conv."""

    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.downsample = _downsample(cin, planes * self.expansion, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip, inplace=True)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class ResNet(nn.Module):
    """torchvision's ResNet with a `width` knob and a choice of stem; `features` -> (N, D).

    `num_classes=0` leaves out the classification head (`fc` becomes an identity), which is
    what a trunk wants: unused parameters break DistributedDataParallel."""

    def __init__(
        self,
        arch: str,
        *,
        width: int = 64,
        stem: str = "imagenet",
        in_channels: int = 3,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        if arch not in BACKBONE_ARCHS:
            raise ValueError(f"unknown backbone arch {arch!r}; choose one of {BACKBONE_ARCHS}")
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; choose one of {STEMS}")
        if min(width, in_channels, num_classes + 1) < 1:
            got = f"width {width}, in_channels {in_channels}, num_classes {num_classes}"
            raise ValueError(f"need width, in_channels >= 1 and num_classes >= 0; got {got}")
        self.arch, self.width, self.stem, self.in_channels = arch, width, stem, in_channels
        kind, depths = KNOWN_RESNETS[arch]
        block = BasicBlock if kind == "basic" else Bottleneck
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, 7, 2, 3, bias=False)
            self.maxpool: nn.Module = nn.MaxPool2d(3, 2, 1)
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(width)
        cin = width
        for i, depth in enumerate(depths):
            planes = width * 2**i
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.embed_dim = cin
        self.fc: nn.Module = nn.Linear(cin, num_classes) if num_classes else nn.Identity()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def build_resnet(
    arch: str,
    *,
    width: int = 64,
    stem: str = "imagenet",
    in_channels: int = 3,
    num_classes: int = 1000,
) -> ResNet:
    return ResNet(arch, width=width, stem=stem, in_channels=in_channels, num_classes=num_classes)


def unwrap_state(state: Mapping) -> dict[str, torch.Tensor]:
    """The plain state_dict inside {"state_dict": ...} or {"model": ...}, without "module."."""
    for key in ("state_dict", "model"):
        if key in state and isinstance(state[key], Mapping):
            state = state[key]
    plain = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise BackboneLayoutError(
                f"{key!r} holds a {type(value).__name__}, not a tensor: this is not a "
                "state_dict (save one with torch.save(model.state_dict(), path))"
            )
        plain[key.removeprefix("module.")] = value
    return plain


def _guess_resnet(state: Mapping[str, torch.Tensor]) -> str | None:
    """Which torchvision ResNet the keys look like, by block kind and blocks per stage."""
    kind = "bottleneck" if "layer1.0.conv3.weight" in state else "basic"
    depths = []
    for stage in range(1, 5):
        blocks = {int(m.group(1)) for k in state if (m := re.match(rf"layer{stage}\.(\d+)\.", k))}
        depths.append(max(blocks) + 1 if blocks else 0)
    for name, layout in KNOWN_RESNETS.items():
        if layout == (kind, tuple(depths)):
            return name
    return None


def detect_layout(state: Mapping) -> tuple[str, int, str]:
    """(arch, width, stem) of a torchvision-layout ResNet state_dict, read off its keys/shapes."""
    plain = unwrap_state(state)
    conv1 = plain.get("conv1.weight")
    if conv1 is None or conv1.dim() != 4:
        raise BackboneLayoutError(
            "no 4-d conv1.weight: this is not a torchvision ResNet state_dict "
            f"(first keys: {list(plain)[:5]}); bring a resnet18 or resnet50 .pth"
        )
    arch = _guess_resnet(plain)
    if arch not in BACKBONE_ARCHS:
        looks = f"it looks like a {arch}" if arch else "it matches no torchvision ResNet"
        raise BackboneLayoutError(f"unsupported layout: {looks}; supported: {BACKBONE_ARCHS}")
    stem = {7: "imagenet", 3: "small"}.get(int(conv1.shape[-1]))
    if stem is None:
        raise BackboneLayoutError(f"conv1 is {tuple(conv1.shape)}: neither stem (7x7 or 3x3)")
    return arch, int(conv1.shape[0]), stem


def _fmt(items: list[str], what: str) -> str:
    more = f" and {len(items) - 5} more" if len(items) > 5 else ""
    return f"{len(items)} {what}: {', '.join(items[:5])}{more}"  # the first 5 say enough


def load_torchvision_state(model: ResNet, state: Mapping) -> list[str]:
    """Load a torchvision-layout state_dict into `model`, strictly except for `fc.*`.

    The ImageNet head is optional and skipped when its shape differs; BatchNorm's
    num_batches_tracked may be absent (torchvision's older files lack it). Returns the model's
    keys left as they were (the skipped head). Raises `BackboneLayoutError` naming what
    differs and what the file looks like."""
    plain = unwrap_state(state)
    own = model.state_dict()
    optional = ("fc.", "num_batches_tracked")
    missing = [k for k in own if k not in plain and not any(o in k for o in optional)]
    unexpected = [k for k in plain if k not in own and not k.startswith("fc.")]
    shapes = [
        f"{k} file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in plain.items()
        if k in own and not k.startswith("fc.") and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        found = ((missing, "missing keys"), (unexpected, "unexpected keys"))
        problems = [_fmt(items, what) for items, what in (*found, (shapes, "shape mismatches"))]
        problems = [p for p in problems if not p.startswith("0 ")]
        try:
            arch, width, stem = detect_layout(plain)
            hint = f"this looks like a {arch} (width {width}, stem {stem!r})"
        except BackboneLayoutError as exc:
            hint = str(exc)
        raise BackboneLayoutError(
            f"weights do not fit {model.arch} (width {model.width}, stem {model.stem!r}, "
            f"{model.in_channels} input channels): {'; '.join(problems)}. Hint: {hint}"
        )
    load = {k: v for k, v in plain.items() if k in own and v.shape == own[k].shape}
    model.load_state_dict(load, strict=False)
    return [k for k in own if k not in load and not k.endswith("num_batches_tracked")]


class Backbone(nn.Module):
    """A ResNet ready for a project's pixels: (N, C, H, W) uint8/float in 0..255 -> (N, D).

    Normalises per channel (mean/std in pixel units), repeats a 1-channel image for a
    3-channel net, and resizes to `input_size` (bilinear) when it is set and the side differs.
    """

    def __init__(
        self,
        resnet: ResNet,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        channels = resnet.in_channels
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"mean and std need {channels} values each, got {mean}, {std}")
        self.resnet = resnet
        self.input_size = input_size
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        # Features scaled to unit length: what a head fitted on L2-normalised features
        # (training.head) expects. Not a weight: the state dict is the same either way.
        self.unit_features = False

    @property
    def embed_dim(self) -> int:
        return self.resnet.embed_dim

    def info(self) -> dict:
        """The keyword arguments `save_backbone` needs besides the ResNet and meta."""
        info = {k: getattr(self.resnet, k) for k in ("arch", "width", "stem", "in_channels")}
        stats = {"mean": self.mean.flatten().tolist(), "std": self.std.flatten().tolist()}
        return {**info, "input_size": self.input_size, **stats}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = self.resnet.in_channels
        if x.dim() != 4:
            raise ValueError(f"expected images (N, C, H, W), got shape {tuple(x.shape)}")
        x = x.float()
        if x.shape[1] != want:
            if x.shape[1] != 1:
                raise ValueError(f"backbone takes {want} channels (or 1), got {x.shape[1]}")
            x = x.expand(-1, want, -1, -1)
        side = self.input_size
        if side and tuple(x.shape[-2:]) != (side, side):
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=False)
        features = self.resnet.features((x - self.mean) / self.std)
        return F.normalize(features, dim=1) if self.unit_features else features


def trunk_copy(backbone: Backbone) -> Backbone:
    """A copy of `backbone` without the ImageNet head, to train inside a classifier."""
    trunk = copy.deepcopy(backbone)
    trunk.resnet.fc = nn.Identity()
    return trunk


def save_backbone(
    path: str | Path,
    resnet: ResNet,
    *,
    arch: str,
    width: int,
    stem: str,
    input_size: int | None,
    in_channels: int,
    mean: Sequence[float],
    std: Sequence[float],
    meta: dict,
) -> None:
    """Write a backbone file: temp file in the same folder, then renamed over `path`."""
    layout = {"arch": arch, "width": width, "stem": stem, "in_channels": in_channels}
    own = {k: getattr(resnet, k) for k in layout}
    if own != layout:
        raise ValueError(f"the ResNet is {own}, not {layout}: Backbone.info() gives its own")
    payload = {
        "format": BACKBONE_FORMAT,
        **layout,
        "input_size": input_size,
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "meta": dict(meta),
        "state_dict": {k: v.detach().cpu() for k, v in resnet.state_dict().items()},
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, target)


def _read_backbone_payload(path: str | Path) -> dict:
    payload = read_state_dict(path)
    if payload.get("format") != BACKBONE_FORMAT:
        raise WeightsError(
            f"{path} is not a LabelLoop backbone file (format {payload.get('format')!r}); "
            "import torchvision weights with backbone_from_torchvision"
        )
    return payload


def is_backbone_file(path: str | Path) -> bool:
    try:
        _read_backbone_payload(path)
    except WeightsError:
        return False
    return True


def _num_classes(state: Mapping[str, torch.Tensor]) -> int:
    fc = state.get("fc.weight")
    return int(fc.shape[0]) if fc is not None else 0


def load_backbone(path: str | Path, device: str | torch.device = "cpu") -> tuple[Backbone, dict]:
    """(Backbone in eval mode on `device`, the file's fields without its state_dict)."""
    payload = _read_backbone_payload(path)
    state = payload["state_dict"]
    resnet = build_resnet(
        payload["arch"],
        width=payload["width"],
        stem=payload["stem"],
        in_channels=payload["in_channels"],
        num_classes=_num_classes(state),
    )
    resnet.load_state_dict(state)
    backbone = Backbone(
        resnet, mean=payload["mean"], std=payload["std"], input_size=payload["input_size"]
    )
    info = {k: v for k, v in payload.items() if k != "state_dict"}
    return backbone.to(device).eval(), info


def backbone_from_torchvision(path: str | Path, *, input_size: int | None = 224) -> Backbone:
    """A Backbone (eval mode) from a torchvision ResNet `.pth`, layout detected from its keys,
    with ImageNet normalisation. `save_backbone(p, b.resnet, **b.info(), meta=...)` keeps it."""
    state = unwrap_state(read_state_dict(path))
    arch, width, stem = detect_layout(state)
    in_channels = int(state["conv1.weight"].shape[1])
    resnet = build_resnet(
        arch, width=width, stem=stem, in_channels=in_channels, num_classes=_num_classes(state)
    )
    load_torchvision_state(resnet, state)
    if in_channels == 3:
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:  # not an ImageNet RGB net: the mid-grey convention of the project's own models
        mean, std = (127.5,) * in_channels, (127.5,) * in_channels
    return Backbone(resnet, mean=mean, std=std, input_size=input_size).eval()
