"""FixMatch (Sohn et al. 2020): a round trained from scratch also learns from images nobody
labeled.

    .venv/bin/python -m pytest tests/training/test_semi.py -p no:django -q

At every optimizer step `train.fit` takes, beside the labeled batch, `mu` x batch images of an
unlabeled sample of the pool. The model labels those it is at least `threshold` sure of under a
weak view (the labeled batches' shifts) and trains on them under a strong view
(`strong_augment`: rotation, zoom, shear, translation, contrast, brightness and a cut-out
square), weighted by `weight`. The step count is the supervised round's; each step sees
1 + 2 x mu batches (about five times the compute at mu = 3). On MNIST it halves the labels to
90% for every order that covers the classes (docs/benchmarks.md, "Semi-supervised training").
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training.batches import shift_augment
from training.contracts import TrainConfig


def _uniform(n: int, gen: torch.Generator, spread: float, device: torch.device) -> torch.Tensor:
    """`n` draws in [-spread, spread) from the CPU generator `gen`, on `device`."""
    return ((torch.rand(n, generator=gen) * 2 - 1) * spread).to(device)


def strong_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """FixMatch's strong view for small grey or colour images, as floats in 0..255: rotation up
    to 25 degrees, zoom 20%, shear, translation up to 10% of the side, contrast 40%, brightness
    40 levels, and a cut-out square of ~2/5 of the side filled with the image's mean. No flips:
    digits and letters have a side."""
    n, c, h, w = x.shape
    device = x.device
    x = x.float()
    angle, scale = _uniform(n, gen, math.radians(25), device), 1 + _uniform(n, gen, 0.2, device)
    shear = _uniform(n, gen, 0.3, device)
    shift_x, shift_y = _uniform(n, gen, 0.2, device), _uniform(n, gen, 0.2, device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, shear - sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False)
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + _uniform(n, gen, 0.4, device).view(n, 1, 1, 1)
    brightness = _uniform(n, gen, 40.0, device).view(n, 1, 1, 1)
    out = ((out - low) * contrast + low + brightness).clamp(0, 255)
    half = max(1, h // 5)
    cy = torch.randint(0, h, (n,), generator=gen).to(device)
    cx = torch.randint(0, w, (n,), generator=gen).to(device)
    rows = (torch.arange(h, device=device)[None, :, None] - cy[:, None, None]).abs() <= half
    cols = (torch.arange(w, device=device)[None, None, :] - cx[:, None, None]).abs() <= half
    return torch.where((rows & cols)[:, None], out.mean(dim=(1, 2, 3), keepdim=True), out)


class FixMatch:
    """The unlabeled half of a FixMatch step, and how much of the pool it pseudo-labeled.

    `unlabeled` is this rank's share of the sample (uint8 N, C, H, W), already on the training
    device: under DDP each rank draws from its own slice, so the ranks see different images."""

    def __init__(self, unlabeled: torch.Tensor, config: TrainConfig, *, total: int) -> None:
        if len(unlabeled) == 0:
            raise ValueError("FixMatch needs at least one unlabeled image")
        self.unlabeled = unlabeled
        self.threshold = config.fixmatch_threshold
        self.mu = config.fixmatch_mu
        self.weight = config.fixmatch_weight
        self.shift = config.augment_shift  # the weak view: the labeled batches' shifts
        self.total = total  # unlabeled images over every rank (for the metrics)
        self.masked = 0.0  # sum over steps of the share of drawn images pseudo-labeled
        self.steps = 0

    @classmethod
    def for_rank(
        cls,
        unlabeled: np.ndarray | None,
        config: TrainConfig,
        *,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ) -> FixMatch | None:
        """None when there is nothing to learn from (no sample, or `mu` 0): a supervised round."""
        if unlabeled is None or len(unlabeled) == 0 or config.fixmatch_mu <= 0:
            return None
        share = unlabeled[rank::world_size] if len(unlabeled) >= world_size else unlabeled
        return cls(torch.as_tensor(share).to(device), config, total=len(unlabeled))

    def loss(
        self,
        net: nn.Module,
        xb: torch.Tensor,
        yb: torch.Tensor,
        gen: torch.Generator,
        *,
        label_smoothing: float = 0.0,
    ) -> torch.Tensor:
        """The labeled batch's cross-entropy plus `weight` x the consistency loss on `mu` x
        batch pool images; one forward pass for the labeled and the strong views together."""
        batch = len(yb)
        pick = torch.randint(0, len(self.unlabeled), (batch * self.mu,), generator=gen)
        u = self.unlabeled[pick.to(self.unlabeled.device)]
        with torch.no_grad():
            weak = net(shift_augment(u, self.shift, gen))
            confidence, pseudo = F.softmax(weak.float(), 1).max(1)
            mask = (confidence >= self.threshold).float()
        logits = net(torch.cat([xb.float(), strong_augment(u, gen)]))
        supervised = F.cross_entropy(logits[:batch], yb, label_smoothing=label_smoothing)
        unsupervised = F.cross_entropy(logits[batch:], pseudo, reduction="none")
        self.masked += mask.mean().item()
        self.steps += 1
        return supervised + self.weight * (unsupervised * mask).mean()

    def metrics(self) -> dict:
        """JSON-ready: the sample, the knobs, and the mean share of drawn pool images that
        passed the threshold (0: the model was never sure enough to learn from the pool)."""
        return {
            "unlabeled": self.total,
            "threshold": self.threshold,
            "mu": self.mu,
            "weight": self.weight,
            "pseudo_labeled": round(self.masked / max(self.steps, 1), 4),
        }
