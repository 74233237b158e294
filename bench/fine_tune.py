"""What a fine-tune buys over the head fit, against a CNN from scratch, on the same labels.

    .venv/bin/python -m bench.fine_tune --backbone PATH [--labels 100,250,500] [--seeds 0,1] \
        [--steps 300] [--lr 1e-3] [--pretrain-minutes M] [--zip PATH] [--threads 2]

The CIFAR-10 10k photos split as `manage.py simulate` splits them (seed 0: 8,000 pool, 2,000
test). For each seed and label count, a random sample of the pool is labeled and three models
are trained on it in one run, each measured on the 2,000 test photos:

- `head`: logistic regression on the backbone's frozen, L2-normalised features (a round on a
  backbone, `training.head.fit_head`);
- `fine-tune`: that model with every layer trained for `--steps` steps at peak `--lr` (the
  `fine_tune` run, `training.train.fit(init=...)`, the rounds' augmentation);
- `scratch`: the seed CNN from scratch with the rounds' recipe (1,000 steps).

`--backbone` is a backbone file (`labelloop-backbone-1`: a `pretrain` run's, or one written
by `--pretrain-minutes M`, which pretrains SimCLR on the 8,000 pool photos for M minutes
first and writes it to PATH). Prints one line per (seed, labels) and the means.
"""

from __future__ import annotations

import argparse
import time
import zipfile
from pathlib import Path

import numpy as np
import torch

from training.backbones import load_backbone, save_backbone
from training.contracts import PretrainSpec, TrainConfig
from training.data import decode_image
from training.head import fit_head, head_probabilities
from training.inference import evaluate
from training.models import classifier_from_backbone
from training.pretrain import resnet_backbone
from training.ssl import pretrain_arrays
from training.train import fit

DEFAULT_ZIP = "/work/shared/data/cifar10-train-10k.zip"


def cifar(zip_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The 10,000 photos as (N, 3, 32, 32) uint8 and their classes, shuffled with seed 0."""
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        files = [archive.read(n) for n in names]
    classes = sorted({n.split("/")[0] for n in names})
    y = np.array([classes.index(n.split("/")[0]) for n in names], dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(names))
    x = np.stack([decode_image(files[i], size=32, channels=3) for i in order])
    return x, y[order]


def pretrain(pool: np.ndarray, minutes: float, path: str) -> None:
    spec = PretrainSpec(
        items=(), cache_dir="", input_size=32, input_channels=3, backbone_path=path,
        state_path="", epochs=1000, minutes=minutes,
    )  # fmt: skip
    backbone, metrics = pretrain_arrays(pool, spec, make_backbone=resnet_backbone)
    mean, std = metrics.pop("mean"), metrics.pop("std")
    print(f"pretrained: {metrics}", flush=True)
    save_backbone(
        path, backbone.cpu(), arch=spec.arch, width=spec.width, stem=spec.stem, input_size=32,
        in_channels=3, mean=mean, std=std, meta={"metrics": metrics},
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", required=True)
    parser.add_argument("--labels", default="100,250,500")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--pretrain-minutes", type=float, default=0.0)
    parser.add_argument("--zip", default=DEFAULT_ZIP)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if not Path(args.zip).is_file():
        raise SystemExit(f"{args.zip}: no such file (the CIFAR-10 10k zip, see its README)")
    torch.set_num_threads(args.threads)
    x, y = cifar(args.zip)
    pool_x, pool_y, test_x, test_y = x[:8000], y[:8000], x[8000:], y[8000:]
    if args.pretrain_minutes > 0:
        pretrain(pool_x, args.pretrain_minutes, args.backbone)
    backbone, info = load_backbone(args.backbone)
    backbone.unit_features = True
    with torch.no_grad():
        feats = [backbone(torch.as_tensor(a[i : i + 500])) for a in (pool_x, test_x)
                 for i in range(0, len(a), 500)]  # fmt: skip
    features = torch.cat(feats).numpy()
    pool_f, test_f = features[:8000], features[8000:]
    classes = tuple(str(i) for i in range(10))
    rows: dict[tuple[int, int], tuple[float, float, float]] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        order = np.random.default_rng(seed).permutation(8000)
        for n in [int(v) for v in args.labels.split(",")]:
            idx = order[:n]
            head = fit_head(pool_f[idx], pool_y[idx], 10, seed=seed)
            acc_head = float((head_probabilities(head, test_f).argmax(1) == test_y).mean())
            model = classifier_from_backbone(
                backbone, info, classes=classes, head_weight=head.fc.weight.detach(),
                head_bias=head.fc.bias.detach(), unit_features=True,
            )  # fmt: skip
            started = time.perf_counter()
            config = TrainConfig(max_steps=args.steps, lr=args.lr)
            tuned, _ = fit(pool_x[idx], pool_y[idx], classes=classes, config=config, seed=seed,
                           init=model)  # fmt: skip
            acc_tuned = evaluate(tuned, test_x, test_y, classes)["accuracy"]
            tuned_s, started = time.perf_counter() - started, time.perf_counter()
            scratch, _ = fit(pool_x[idx], pool_y[idx], classes=classes, seed=seed)
            acc_scratch = evaluate(scratch, test_x, test_y, classes)["accuracy"]
            rows[(seed, n)] = (acc_head, acc_tuned, acc_scratch)
            scratch_s = time.perf_counter() - started
            print(f"seed {seed} labels {n}: head {acc_head:.3f}  fine-tune {acc_tuned:.3f} "
                  f"({tuned_s:.0f}s)  scratch {acc_scratch:.3f} ({scratch_s:.0f}s)",
                  flush=True)  # fmt: skip
    for n in sorted({n for _, n in rows}):
        means = np.mean([v for (_, m), v in rows.items() if m == n], axis=0)
        print(f"mean at {n} labels: head {means[0]:.3f}  fine-tune {means[1]:.3f}  "
              f"scratch {means[2]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
