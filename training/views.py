"""SimCLR's views of a batch of images: random resized crops (with flips), colour jitter and
grayscale, all batched tensor ops on one generator (no torchvision).

    .venv/bin/python -m pytest tests/training/test_pretrain.py -p no:django -q
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CROP_SCALE = (0.2, 1.0)  # fraction of the image's area a crop keeps (SimCLR's small-image range)
CROP_RATIO = (3 / 4, 4 / 3)  # crop aspect ratios, width / height
JITTER = 0.4  # brightness, contrast and saturation factors drawn from [1 - 0.4, 1 + 0.4]
JITTER_P = 0.8  # share of views that get the colour jitter
GRAY_P = 0.2  # share of views turned grey


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def random_resized_crop(x: torch.Tensor, gen: torch.Generator, *, flip: bool) -> torch.Tensor:
    """Each image of float `x` (N, C, H, W) cropped to a random area/aspect and resized back to
    H x W with one batched affine grid (bilinear); mirrored left-right half the time if `flip`."""
    n = x.shape[0]
    area = _uniform(n, *CROP_SCALE, gen)
    log_ratio = _uniform(n, math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1]), gen)
    ratio = torch.exp(log_ratio)
    # Crop width and height as fractions of the image's (affine_grid's half-extent units).
    cw = torch.sqrt(area * ratio).clamp(max=1.0)
    ch = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(n, generator=gen) * 2 - 1) * (1 - cw)
    cy = (torch.rand(n, generator=gen) * 2 - 1) * (1 - ch)
    sx = cw * torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0) if flip else cw
    zero = torch.zeros(n)
    theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, ch, cy], 1)], 1)
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _gray(x: torch.Tensor) -> torch.Tensor:
    return (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, True)


def colour_jitter(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation (each x U[0.6, 1.4]) on a JITTER_P share of the RGB
    images in `x` (floats in 0..1), then grayscale on a GRAY_P share. No hue shift: it costs a
    colour-space round trip per pixel and SimCLR's ablation ranks it last of the four."""
    n = x.shape[0]
    apply = torch.rand(n, generator=gen) < JITTER_P

    def factor() -> torch.Tensor:
        f = _uniform(n, 1 - JITTER, 1 + JITTER, gen)
        return torch.where(apply, f, torch.ones(n)).view(n, 1, 1, 1).to(x.device)

    x = x * factor()
    mean = _gray(x).mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * factor() + mean
    gray = _gray(x)
    x = ((x - gray) * factor() + gray).clamp(0, 1)
    to_gray = (torch.rand(n, generator=gen) < GRAY_P).view(n, 1, 1, 1).to(x.device)
    return torch.where(to_gray, _gray(x).expand_as(x), x)


def make_view(x: torch.Tensor, gen: torch.Generator, *, flip: bool) -> torch.Tensor:
    """One SimCLR view of uint8 images `x` (N, C, H, W), as floats in 0..1."""
    view = random_resized_crop(x.float() / 255, gen, flip=flip)
    return colour_jitter(view, gen) if x.shape[1] == 3 else view
