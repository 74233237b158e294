"""Scoring on a two-node Ray cluster (`ray.cluster_utils.Cluster`), with and without a node loss.

    .venv/bin/python -m pytest tests/training/test_multinode.py -q

These tests replace the session's local Ray with their own cluster and shut it down after;
the next test that needs `ray_local` starts the local one again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import ray
from ray.cluster_utils import Cluster

from tests.training.conftest import Digits, Store
from tests.training.test_score import small_checkpoint
from training.cluster import cluster_cpus, quiet_ray_data
from training.contracts import ScoreSpec
from training.score import run_scoring

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
    ray.init(address=cluster.address, log_to_driver=False)
    quiet_ray_data()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def worker_node(cluster: Cluster) -> Iterator[object]:
    """A second node with 2 CPUs, so a 4-actor scoring pool must span both nodes."""
    node = cluster.add_node(num_cpus=2)
    cluster.wait_for_nodes()
    yield node
    if node in cluster.worker_nodes:
        cluster.remove_node(node)


@pytest.fixture(scope="module")
def checkpoint(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> str:
    return small_checkpoint(digits, tmp_path_factory.mktemp("multinode") / "model.pt")[0]


def assert_each_scored_once(result_keys: tuple[str, ...], store: Store) -> None:
    assert len(result_keys) == len(store.items) == 5000
    assert set(result_keys) == {it.key for it in store.items}
    assert len(set(result_keys)) == len(result_keys)


def test_two_nodes_score_5000_images_each_exactly_once(
    cluster: Cluster, worker_node: object, store: Store, checkpoint: str
) -> None:
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2 and cluster_cpus() == 4
    spec = ScoreSpec(
        checkpoint, store.items, store.cache_dir, strategy="margin", batch_size=100, inline_below=0
    )
    result = run_scoring(spec)
    assert_each_scored_once(result.keys, store)
    assert result.keys == tuple(it.key for it in store.items)
    accuracy = (result.predicted == np.array(store.labels)).mean()
    assert accuracy > 0.7


def test_scoring_completes_when_a_node_is_removed_midway(
    cluster: Cluster, worker_node: object, store: Store, checkpoint: str, tmp_path: Path
) -> None:
    removed: list[float] = []

    def kill_worker_node(stage: str, fraction: float) -> None:
        if stage == "score" and not removed and fraction > 0.1:
            cluster.remove_node(worker_node)
            removed.append(fraction)

    spec = ScoreSpec(
        checkpoint, store.items, store.cache_dir, strategy="entropy", batch_size=50, inline_below=0
    )
    result = run_scoring(spec, progress=kill_worker_node)
    assert removed and removed[0] < 0.9  # the node went away with most of the pool still to do
    assert len([n for n in ray.nodes() if n["Alive"]]) == 1
    assert_each_scored_once(result.keys, store)
    np.testing.assert_allclose(result.probabilities.sum(1), 1.0, atol=1e-5)
