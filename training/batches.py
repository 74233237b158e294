"""How training data is fed: normalisation statistics, the per-epoch (class-balanced) sample
order, augmentation (shifts and a random affine warp), the validation split and the
learning-rate schedule.

    .venv/bin/python -m pytest tests/training/test_train.py -q
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from training.contracts import TrainConfig


def channel_stats(x: np.ndarray, max_images: int = 10_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std in 0..255 units, from (at most) the first `max_images`."""
    sample = x[:max_images].astype(np.float64)
    mean = sample.mean(axis=(0, 2, 3))
    std = np.maximum(sample.std(axis=(0, 2, 3)), 1.0)  # a blank training set must not divide by 0
    return mean.tolist(), std.tolist()


def shift_augment(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by up to `max_shift` px, filling with its edge pixels."""
    if max_shift <= 0:
        return x
    n, c, h, w = x.shape
    padded = F.pad(x.float(), (max_shift,) * 4, mode="replicate")
    oy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = padded.gather(2, rows.expand(n, c, h, w + 2 * max_shift))
    return out.gather(3, cols.expand(n, c, h, w))


def augment(x: torch.Tensor, config: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """The training batches' augmentation: shifts, then a random affine warp."""
    x = shift_augment(x, config.augment_shift, gen)
    return affine_augment(
        x,
        degrees=config.augment_rotate,
        scale=config.augment_scale,
        shear=config.augment_shear,
        gen=gen,
    )


def affine_augment(
    x: torch.Tensor, *, degrees: float, scale: float, shear: float, gen: torch.Generator
) -> torch.Tensor:
    """Rotate each image by up to `degrees` either way, zoom it by up to `scale` (a fraction)
    in or out and shear it by up to `shear` degrees, about its centre, bilinearly, filling
    with its edge pixels. All zero: `x` as it is."""
    if not (degrees or scale or shear):
        return x
    n = x.shape[0]

    def uniform() -> torch.Tensor:  # in [-1, 1), one per image
        return torch.rand(n, generator=gen) * 2 - 1

    angle = uniform() * math.radians(degrees)
    skew = torch.tan(uniform() * math.radians(shear))
    zoom = 1 + uniform() * scale
    cos, sin = torch.cos(angle), torch.sin(angle)
    # Output -> input sampling coordinates: rotation times a horizontal shear, over the zoom.
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos / zoom
    theta[:, 0, 1] = (cos * skew - sin) / zoom
    theta[:, 1, 0] = sin / zoom
    theta[:, 1, 1] = (sin * skew + cos) / zoom
    x = x.float()
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def epoch_order(
    y: torch.Tensor, config: TrainConfig, gen: torch.Generator, rank: int, world_size: int
) -> torch.Tensor:
    """This rank's sample order for one epoch; class-balanced when labels are imbalanced."""
    n = len(y)
    counts = torch.bincount(y)
    present = counts[counts > 0]
    if present.max() > config.balance_ratio * present.min():
        weights = 1.0 / counts[y].double()
        order = torch.multinomial(weights, n, replacement=True, generator=gen)
    else:
        order = torch.randperm(n, generator=gen)
    per_rank = max(1, n // world_size)  # equal shards keep DDP ranks in lock-step
    return order[rank::world_size][:per_rank]


def one_cycle(total_steps: int, warmup: float = 0.1) -> Callable[[int], float]:
    """LR multiplier: linear warm-up over `warmup` of the steps, then cosine down to zero."""
    warm = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (
            1.0 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm)))
        )

    return factor


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train positions, val positions): `fraction` of each class, never a class's last item."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_val = min(round(len(idx) * fraction), len(idx) - 1)
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    return np.sort(np.array(train, dtype=np.int64)), np.sort(np.array(val, dtype=np.int64))
