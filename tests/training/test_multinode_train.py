"""Ray Train (TorchTrainer, DDP over two nodes) losing a node mid-training: the worker group
restarts on the nodes left (FailureConfig(max_failures)) and the run completes.

    .venv/bin/python -m pytest tests/training/test_multinode_train.py -q

Builds its own `ray.cluster_utils.Cluster` (the session's local Ray is shut down first, as in
test_multinode.py): a head with no CPUs, so the two 1-CPU training workers must sit on two
separate worker nodes, and losing either node kills one rank.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from tests.training.conftest import Digits, Store
from training.cluster import quiet_ray_data
from training.contracts import TrainConfig, TrainSpec
from training.models import load_checkpoint
from training.train import run_training

pytestmark = pytest.mark.slow
CLASSES = tuple(str(d) for d in range(10))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    quiet_ray_data()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_ray_train_finishes_when_a_node_is_lost_mid_training(
    cluster: Cluster, digits: Digits, store: Store, tmp_path: Path
) -> None:
    n_train, n_val = 800, 300
    spec = TrainSpec(
        classes=CLASSES,
        input_size=28,
        input_channels=1,
        items=store.items[:n_train],
        labels=tuple(int(y) for y in digits.y[:n_train]),
        val_items=store.items[4000 : 4000 + n_val],
        val_labels=tuple(int(y) for y in digits.y[4000 : 4000 + n_val]),
        cache_dir=store.cache_dir,
        checkpoint_path=str(tmp_path / "model.pt"),
        config=TrainConfig(
            epochs=6,
            min_steps=0,  # exactly 6 epochs: 13 steps each per rank
            patience=10,
            num_workers=2,
            num_threads=2,
            distributed=True,
            max_failures=2,
        ),
    )
    # Both worker nodes have one CPU and the head none: each hosts exactly one of the two
    # ranks, so whichever is removed takes a rank with it. Not the node this driver attached
    # to (with every node on one IP, that may be a worker node): the progress board lives
    # there, and a run whose driver's node dies is lost whatever Ray Train does.
    here = ray.get_runtime_context().get_node_id()
    busy = [node for node in cluster.worker_nodes if node.node_id != here]
    seen: list[tuple[str, float]] = []
    lost_at: list[float] = []

    def lose_a_node(stage: str, fraction: float) -> None:
        seen.append((stage, fraction))
        if stage == "train" and fraction > 0 and not lost_at:
            # A replacement joins (as an autoscaler would add one), then a busy node dies.
            cluster.add_node(num_cpus=1)
            cluster.remove_node(busy[0], allow_graceful=False)
            lost_at.append(fraction)

    result = run_training(spec, progress=lose_a_node)

    # The node went away after the first epoch(s) and before the last one had finished.
    assert lost_at and 0 < lost_at[0] < 1, seen
    assert seen[-1] == ("done", 1.0)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 3  # head, survivor, replacement
    _, meta = load_checkpoint(result.checkpoint_path)
    assert meta["metrics"]["world_size"] == 2
    assert meta["metrics"]["epochs_run"] == 6  # a full run, not the remains of the broken one
    assert result.metrics["accuracy"] > 0.7  # 800 digits, 6 epochs: a model, not noise
