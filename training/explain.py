"""Class-activation maps (HiResCAM, through captum) and the shortcut check.

    .venv/bin/python -m pytest tests/training/test_explain.py -q -p no:django

`class_activation_maps(model, x)` explains each image's predicted class (or a given one) with
HiResCAM (Draelos & Carin 2020): on the architecture's last convolutional feature map
(`target_layer`), the gradient of the class score times the activation, summed over channels
(captum's `LayerGradientXActivation`), kept where positive, upsampled bilinearly to the
input's side and scaled to 0..1 per image. Where a net ends in global average pooling and a
linear layer (the ResNets, a backbone's head) this is exactly CAM and Grad-CAM; where it
flattens the map into the linear layer (seed_cnn) Grad-CAM averages the gradient over the map
and smears the evidence, while HiResCAM stays the class score's own split over positions.
Measured on seed_cnn with a planted corner mark: HiResCAM put a median 0.93 of the mass on the
mark, Grad-CAM 0.18-0.23 (docs/benchmarks.md, "Shortcut check").

`border_share(maps)` is the share of a map's mass in the image's outer band (`BORDER_BAND`
of the side on each edge). `shortcut_check(...)` takes, per class, the images the model is
surest about and flags a class when the median of their border shares is above
`SHORTCUT_THRESHOLD`: a model that reads a watermark, a frame or a corner mark puts its
evidence there, one that reads the object puts it inside.

`overlay_png(map)` renders a map as an RGBA PNG (a warm colour map, transparent where the
map is zero) to lay over the image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradientXActivation
from PIL import Image
from torch import nn

from training.backbones import Backbone
from training.inference import predict_probabilities
from training.models import Classifier

# The outer band on each edge, as a fraction of the side: 1/8 covers 43.75% of the area
# (1 - (3/4)^2). Wide enough to hold a corner mark, a frame or a watermark along an edge, and
# on MNIST-like images it is the empty margin around the object.
BORDER_BAND = 0.125
# A class is flagged when the median border share of its surest images is above this. A map
# spread evenly puts 0.4375 of its mass in the band. Measured (docs/benchmarks.md, "Shortcut
# check"): seed_cnn on clean MNIST digits, 0.07-0.32 per class; the class given away by a
# planted corner square, 0.83-0.84. 0.6 lies between them with room either way, and reads
# "the border holds more of the evidence than an even spread would put there, by a third".
SHORTCUT_THRESHOLD = 0.6
SUREST_PER_CLASS = 8  # images per class the check explains: the model's most confident ones


def target_layer(model: Classifier) -> nn.Module:
    """The last convolutional feature map of `model`'s trunk, per architecture: seed_cnn's
    second conv block (its ReLU, 11x11 at 28 px), resnet_small's last block, and layer4 of the
    torchvision-layout ResNets (from scratch or a project backbone)."""
    trunk = model.trunk
    if isinstance(trunk, Backbone):
        return trunk.resnet.layer4
    if isinstance(trunk, nn.Sequential):
        convs = [i for i, m in enumerate(trunk) if isinstance(m, nn.Conv2d)]
        blocks = [m for m in trunk if hasattr(m, "conv2")]
        if blocks:  # resnet_small: residual blocks, then pooling
            return blocks[-1]
        if convs:  # seed_cnn: conv, ReLU, pool, conv, ReLU, pool, flatten
            after = trunk[convs[-1] + 1]
            return after if isinstance(after, nn.ReLU) else trunk[convs[-1]]
    raise ValueError(
        f"no convolutional feature map to explain in {type(trunk).__name__}: a head alone "
        "(stored embeddings) has no pixels to point at"
    )


@dataclass(frozen=True)
class Explained:
    maps: np.ndarray  # (N, H, W) float32 in 0..1, at the input's side
    targets: np.ndarray  # (N,) the class index each map explains
    probabilities: np.ndarray  # (N, C) softmax outputs


def class_activation_maps(
    model: Classifier,
    x: np.ndarray,
    *,
    targets: np.ndarray | None = None,
    batch_size: int = 64,
) -> Explained:
    """Grad-CAM maps for uint8 images `x` (N, C, H, W), of `targets` (default: each image's
    predicted class). The model is put in eval mode; dropout and batch norm are then fixed."""
    model.eval()
    device = next(model.parameters()).device
    attribution = LayerGradientXActivation(model, target_layer(model))
    maps, chosen, probs = [], [], []
    for start in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[start : start + batch_size]).to(device).float()
        with torch.no_grad():
            p = torch.softmax(model(xb).float(), dim=1)
        given = None if targets is None else torch.as_tensor(targets[start : start + len(xb)])
        t = (p.argmax(dim=1) if given is None else given).to(device)
        # HiResCAM: gradient x activation summed over channels, only what speaks for the class.
        cam = attribution.attribute(xb, target=t).sum(dim=1, keepdim=True).clamp_min(0)
        up = LayerAttribution.interpolate(cam, tuple(xb.shape[-2:]), interpolate_mode="bilinear")
        up = up.detach().float().clamp_min(0).sum(dim=1)  # (n, H, W); one channel already
        peak = up.flatten(1).amax(dim=1).clamp_min(1e-12)
        maps.append((up / peak[:, None, None]).cpu().numpy())
        chosen.append(t.cpu().numpy())
        probs.append(p.cpu().numpy())
    if not maps:
        side = x.shape[-1] if x.ndim == 4 else 0
        return Explained(
            np.zeros((0, side, side), np.float32), np.zeros(0, np.int64), np.zeros((0, 0))
        )
    return Explained(
        np.concatenate(maps).astype(np.float32),
        np.concatenate(chosen).astype(np.int64),
        np.concatenate(probs).astype(np.float32),
    )


def content_box(width: int, height: int, size: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the image inside its `size` letterbox
    (`training.data.letterbox`: the long side scaled to `size`, centred)."""
    if (width, height) == (size, size) or width <= 0 or height <= 0:
        return 0, 0, size, size
    scale = size / max(width, height)
    w, h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = (size - w) // 2, (size - h) // 2
    return left, top, left + w, top + h


def crop_to_content(cam: np.ndarray, width: int, height: int) -> np.ndarray:
    """A map (H, W) at the model's input, cut to the part that shows the image itself."""
    left, top, right, bottom = content_box(width, height, cam.shape[-1])
    return cam[top:bottom, left:right]


def border_share(cam: np.ndarray, band: float = BORDER_BAND) -> float:
    """The share of a map's (H, W) mass within `band` of the side from any edge (0 when the
    map is empty)."""
    h, w = cam.shape
    bh, bw = max(1, round(h * band)), max(1, round(w * band))
    total = float(cam.sum())
    if total <= 0:
        return 0.0
    inner = float(cam[bh : h - bh, bw : w - bw].sum())
    return (total - inner) / total


def shortcut_check(
    model: Classifier,
    x: np.ndarray,
    labels: np.ndarray,
    classes: tuple[str, ...] | list[str],
    *,
    per_class: int = SUREST_PER_CLASS,
    threshold: float = SHORTCUT_THRESHOLD,
) -> dict:
    """Per class, the `per_class` images of that class (`labels`) the model gives the highest
    probability of it, explained for it; a class is flagged when the median share of their
    maps' mass in the border band is above `threshold`. Plain data, ready to store as JSON."""
    labels = np.asarray(labels, dtype=np.int64)
    probs = predict_probabilities(model, x)
    report: dict[str, dict] = {}
    for c, name in enumerate(classes):
        rows = np.flatnonzero(labels == c)
        if rows.size == 0:
            continue
        surest = rows[np.argsort(-probs[rows, c], kind="stable")[:per_class]]
        explained = class_activation_maps(model, x[surest], targets=np.full(len(surest), c))
        shares = [border_share(m) for m in explained.maps]
        median = float(np.median(shares))
        report[str(name)] = {
            "images": len(shares),
            "border_share": round(median, 4),
            "mean_confidence": round(float(probs[surest, c].mean()), 4),
            "flagged": median > threshold,
        }
    flagged = [name for name, r in report.items() if r["flagged"]]
    return {
        "band": BORDER_BAND,
        "threshold": threshold,
        "per_class": report,
        "flagged": flagged,
        "max_border_share": max((r["border_share"] for r in report.values()), default=None),
    }


# A warm colour map (black-red-yellow-white, like "hot"), from 0 to 1 in five stops.
_STOPS = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
_COLOURS = np.array(
    [[0, 0, 128], [128, 0, 160], [230, 40, 40], [255, 190, 0], [255, 255, 180]], dtype=np.float64
)
OVERLAY_ALPHA = 0.65  # opacity of the map's peak; the image stays readable under it


def overlay_png(cam: np.ndarray) -> bytes:
    """A map (H, W) in 0..1 as an RGBA PNG: coloured by value, transparent where it is 0."""
    v = np.clip(np.nan_to_num(cam.astype(np.float64)), 0.0, 1.0)
    rgb = np.stack([np.interp(v, _STOPS, _COLOURS[:, k]) for k in range(3)], axis=-1)
    alpha = (255 * OVERLAY_ALPHA * np.sqrt(v))[..., None]
    rgba = np.concatenate([rgb, alpha], axis=-1).round().astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgba).save(out, format="PNG", optimize=True)
    return out.getvalue()
