"""What semi-supervised training (FixMatch) is worth to each acquisition rule, on MNIST-5k.

    .venv/bin/python -m bench.semi_supervised [--seeds 6] [--budget 245] [--target 0.9] \
        [--rules diverse typiclust random] [--train supervised fixmatch] [--dirty 0.15] \
        [--min-steps N]

The engine's in-memory simulation (`training/simulate.py` with the setup of `bench.cold_start
--start queue`: 20 first labels from what the queue serves an empty project, 25 per round, 10%
exploration for the model-driven rules), run until `--target` test accuracy, with each rule
trained two ways side by side:

- `supervised`: the worker's `TrainConfig()` recipe on the labels alone (what ships);
- `fixmatch`: Sohn et al. (2020), "FixMatch": every step also takes `mu` x 32 images of the
  whole pool, labels those the model is >= `threshold` sure of under a weak augmentation (the
  worker's 2 px shifts) and trains on them under a strong one (rotation, scale, shear,
  translation, contrast and brightness, a cut-out square). The same steps (`--min-steps`;
  the figures in docs/benchmarks.md used 300), AdamW and schedule as `TrainConfig()`; about
  five times the compute of a supervised round.

The product does not train this way: this is a measurement (docs/benchmarks.md, "Semi-supervised
training"). Prints labels to 90% (and to 95% with `--target 0.95`) per seed, the means, and each
rule's ratio to `random` under the same training.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
import torch.nn.functional as F

import training.simulate as sim
from bench.cold_start import add_min_steps, run_rule, use_min_steps
from bench.protocol import _mnist5k
from training.batches import channel_stats, one_cycle, shift_augment
from training.contracts import TrainConfig
from training.models import Classifier, build_model
from training.train import seed_everything


def _uniform(n: int, gen: torch.Generator, spread: float) -> torch.Tensor:
    return (torch.rand(n, generator=gen) * 2 - 1) * spread


def strong_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """FixMatch's strong view for small grey or colour images (no flips: digits have a side)."""
    n, c, h, w = x.shape
    x = x.float()
    angle, scale = _uniform(n, gen, math.radians(25)), 1 + _uniform(n, gen, 0.2)
    shear, shift_x, shift_y = _uniform(n, gen, 0.3), _uniform(n, gen, 0.2), _uniform(n, gen, 0.2)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack(
        [torch.stack([cos, shear - sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1
    )
    grid = F.affine_grid(theta, [n, c, h, w], align_corners=False)
    out = F.grid_sample(x, grid, align_corners=False)
    low = x.amin(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + _uniform(n, gen, 0.4).view(n, 1, 1, 1)
    brightness = _uniform(n, gen, 40.0).view(n, 1, 1, 1)
    out = ((out - low) * contrast + low + brightness).clamp(0, 255)
    half = max(1, h // 5)  # a cut-out square of ~2/5 of the side, filled with the image's mean
    cy, cx = torch.randint(0, h, (n,), generator=gen), torch.randint(0, w, (n,), generator=gen)
    rows = (torch.arange(h)[None, :, None] - cy[:, None, None]).abs() <= half
    cols = (torch.arange(w)[None, None, :] - cx[:, None, None]).abs() <= half
    return torch.where((rows & cols)[:, None], out.mean(dim=(1, 2, 3), keepdim=True), out)


def fit_fixmatch(
    x: np.ndarray,
    y: np.ndarray,
    pool: np.ndarray,
    *,
    classes: tuple[str, ...],
    config: TrainConfig,
    seed: int,
    mu: int = 3,
    threshold: float = 0.95,
    weight: float = 1.0,
    **_: object,
) -> tuple[Classifier, dict]:
    """`train.fit`'s signature and recipe, plus FixMatch's loss on `pool` (uint8 N,C,H,W)."""
    seed_everything(seed)
    steps, batch = max(config.min_steps, config.max_steps), config.batch_size
    mean, std = channel_stats(x)
    model = build_model(
        "seed_cnn",
        num_classes=len(classes),
        input_size=x.shape[2],
        input_channels=x.shape[1],
        dropout=config.dropout,
        mean=mean,
        std=std,
    )
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, one_cycle(steps))
    gen = torch.Generator().manual_seed(seed)
    xt, yt, ut = torch.as_tensor(x), torch.as_tensor(y, dtype=torch.long), torch.as_tensor(pool)
    balanced = 1.0 / torch.bincount(yt).double()[yt]
    model.train()
    used = 0.0
    for _step in range(steps):
        idx = torch.multinomial(balanced, batch, replacement=True, generator=gen)
        unlabeled = ut[torch.randint(0, len(ut), (batch * mu,), generator=gen)]
        with torch.no_grad():
            confidence, pseudo = F.softmax(model(shift_augment(unlabeled, 2, gen)), 1).max(1)
            mask = (confidence >= threshold).float()
        xb = shift_augment(xt[idx], config.augment_shift, gen)
        logits = model(torch.cat([xb, strong_augment(unlabeled, gen)]))
        supervised = F.cross_entropy(logits[:batch], yt[idx])
        consistency = (F.cross_entropy(logits[batch:], pseudo, reduction="none") * mask).mean()
        optimizer.zero_grad(set_to_none=True)
        (supervised + weight * consistency).backward()
        optimizer.step()
        scheduler.step()
        used += mask.mean().item()
    model.eval()
    return model, {"pseudo_labeled": used / steps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--budget", type=int, default=245)
    parser.add_argument("--target", type=float, default=0.90, help="stop a seed's run here")
    parser.add_argument(
        "--rules", nargs="+", choices=["diverse", "typiclust", "random"],
        default=["diverse", "typiclust", "random"],
    )  # fmt: skip
    parser.add_argument(
        "--train", nargs="+", choices=["supervised", "fixmatch"], default=["supervised", "fixmatch"]
    )
    parser.add_argument("--dirty", type=float, default=0.0, help="share of the pool made junk")
    add_min_steps(parser)
    args = parser.parse_args()
    use_min_steps(args.min_steps)
    torch.set_num_threads(1)
    pool_x, pool_y, test_x, test_y = _mnist5k()
    if args.dirty:
        pool_x, pool_y, _ = sim.dirty_pool(pool_x, pool_y, fraction=args.dirty, seed=0)
    data = (pool_x, pool_y, test_x, test_y)
    targets = sorted({0.90, args.target})
    supervised_fit = sim.fit
    for train in args.train:
        means: dict[str, list[float]] = {}
        sim.fit = (
            supervised_fit
            if train == "supervised"
            else lambda x, y, **kw: fit_fixmatch(x, y, pool_x, **kw)
        )
        for rule in args.rules:
            started, reached = time.perf_counter(), {t: [] for t in targets}
            for seed in range(args.seeds):
                curve = run_rule(
                    data, rule, seed=seed, budget=args.budget, target=args.target, start="queue"
                )
                for t in targets:
                    reached[t].append(curve.labels_to_reach(t) or args.budget)
                print(
                    f"  {train} {rule} seed {seed}: "
                    + " ".join(
                        f"{n}:{a:.1%}" for n, a in zip(curve.labels, curve.accuracy, strict=True)
                    ),
                    flush=True,
                )
            means[rule] = [float(np.mean(reached[t])) for t in targets]
            took = time.perf_counter() - started
            for t in targets:
                print(
                    f"{train:>10} {rule:>9}: labels to {t:.0%} {reached[t]} "
                    f"mean {np.mean(reached[t]):.1f} ({took:.0f}s)",
                    flush=True,
                )
        if "random" in means:
            for rule in (r for r in args.rules if r != "random"):
                ratios = " ".join(
                    f"{t:.0%}: {m / r:.2f}"
                    for t, m, r in zip(targets, means[rule], means["random"], strict=True)
                )
                print(f"{train:>10} {rule:>9} / random: {ratios}", flush=True)
    sim.fit = supervised_fit


if __name__ == "__main__":
    main()
