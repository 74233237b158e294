"""How many CPUs a training task asks for, on clusters of different shapes.

.venv/bin/python -m pytest tests/training/test_cluster.py -q
"""

from __future__ import annotations

from training.cluster import node_cpus


def node(cpus: int, gpus: int = 0, alive: bool = True) -> dict:
    resources = {"CPU": float(cpus)} | ({"GPU": float(gpus)} if gpus else {})
    return {"Alive": alive, "Resources": resources}


def test_a_cpu_run_may_take_the_biggest_node() -> None:
    assert node_cpus([node(16), node(8, gpus=1), node(64, alive=False)]) == 16


def test_a_gpu_run_asks_no_more_cpus_than_a_gpu_node_has() -> None:
    # A 16-CPU head without a GPU and 8-CPU GPU nodes: asking for 16 CPUs and a GPU would
    # fit no node, and the run would wait for ever.
    nodes = [node(16), node(8, gpus=1), node(4, gpus=2)]
    assert node_cpus(nodes, with_gpu=True) == 8


def test_a_node_without_cpus_still_gives_one() -> None:
    assert node_cpus([node(0)]) == 1
    assert node_cpus([], with_gpu=True) == 1


def test_a_local_ray_starts_with_token_auth_and_without_ray_s_warning_about_it() -> None:
    """Ray 2.60 warns at every start of a local cluster that token authentication is on by
    default; that notice is dropped, so the worker's log starts clean, and auth stays on."""
    import os
    import subprocess
    import sys

    code = (
        "import os, ray; from training.cluster import ensure_ray; ensure_ray(); "
        "print('mode', os.environ.get('RAY_AUTH_MODE'), ray.get(ray.remote(lambda: 42).remote())); "
        "ray.shutdown()"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "mode token 42" in done.stdout
    assert "Token authentication" not in done.stderr, done.stderr[-3000:]
