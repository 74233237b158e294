"""docker-compose.yml, validated by ``docker-compose config`` (offline: no Docker engine).

    apt-get install -y docker-compose
    .venv/bin/python -m pytest tests/deploy -q

Without the docker-compose binary these tests skip, except under ``CI=true``, where they
fail (``.ci/run`` installs it): CI must not pass by not looking.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.urls import resolve

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "web", "worker", "ray-head", "ray-worker")
LONG_RUNNING = ("db", "web", "worker", "ray-head", "ray-worker")
RAY_NODES = ("worker", "ray-head", "ray-worker")  # every container that runs a raylet


def compose_binary() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    message = "no docker-compose binary: apt-get install -y docker-compose"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the compose checks must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> dict:
    """The file as compose resolves it (anchors merged, defaults interpolated), with .env
    taken from .env.example as an operator's first `cp .env.example .env` would make it."""
    binary = compose_binary()
    where = tmp_path_factory.mktemp("compose")
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(ROOT / name, where / name)
    shutil.copy(ROOT / ".env.example", where / ".env")
    # Compose interpolates from the environment first: keep this shell's variables out of it.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    done = subprocess.run(
        [*binary, "config"], cwd=where, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    """The file as written (for what `config` rewrites, like env_file)."""
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def command_text(service: dict) -> str:
    command = service["command"]
    return command if isinstance(command, str) else " ".join(command)


def test_the_compose_file_defines_the_database_the_app_the_worker_and_the_ray_cluster(config):
    assert set(config["services"]) == {"db", *APP_SERVICES}
    assert config["services"]["db"]["image"].startswith("postgres:16")


def test_every_app_service_runs_the_image_built_from_the_dockerfile(config, raw):
    images = {config["services"][name]["image"] for name in APP_SERVICES}
    assert len(images) == 1  # one image: same Ray and Python on every node and in the driver
    for name in APP_SERVICES:
        build = raw["services"][name]["build"]
        assert build["context"] == "." and "dockerfile" not in build  # ./Dockerfile
        assert set(config["services"][name]["build"]["args"]) == {"TORCH_SPEC", "TORCH_INDEX_URL"}


def test_the_ray_worker_reserves_one_nvidia_gpu_and_can_be_scaled(config):
    ray_worker = config["services"]["ray-worker"]
    devices = ray_worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    # --scale ray-worker=N needs N distinct containers: no fixed name, no fixed host port.
    assert "container_name" not in ray_worker
    assert "ports" not in ray_worker
    assert "--address=ray-head:6379" in command_text(ray_worker)
    assert "--block" in command_text(ray_worker)


def test_the_ray_head_listens_where_the_worker_and_the_nodes_look(config):
    head = config["services"]["ray-head"]
    assert "--head" in command_text(head)
    assert "--port=6379" in command_text(head)
    assert "--object-store-memory=" in command_text(head)
    # Its dashboard is published on loopback only: it has no authentication.
    assert head["ports"] and all(p.startswith("127.0.0.1:") for p in head["ports"])
    worker = config["services"]["worker"]
    assert worker["environment"]["RAY_ADDRESS"] == "ray-head:6379"
    # A Ray driver must run on a Ray node: the worker joins with no CPUs or GPUs of its own.
    assert "ray start --address=ray-head:6379 --num-cpus=0 --num-gpus=0" in command_text(worker)
    assert "manage.py worker" in command_text(worker)


def test_web_worker_and_ray_nodes_mount_the_image_store_and_scratch_at_the_same_paths(config):
    expected = {"media:/data/media:rw", "data:/data:rw"}
    for name in APP_SERVICES:
        service = config["services"][name]
        mounts = {
            m if isinstance(m, str) else f"{m['source']}:{m['target']}:rw"
            for m in service["volumes"]
        }
        assert expected <= mounts, name
        assert service["environment"]["LABELLOOP_DATA_DIR"] == "/data"
        assert service["environment"]["LABELLOOP_MEDIA_ROOT"] == "/data/media"
    assert {"pgdata", "media", "data"} <= set(config["volumes"])
    assert "pgdata:/var/lib/postgresql/data:rw" in config["services"]["db"]["volumes"]


def test_every_long_running_service_has_a_healthcheck(config):
    for name in LONG_RUNNING:
        assert config["services"][name]["healthcheck"]["test"], name
    assert "pg_isready" in " ".join(config["services"]["db"]["healthcheck"]["test"])


def test_the_web_healthcheck_probes_the_real_health_endpoint(config):
    probe = " ".join(config["services"]["web"]["healthcheck"]["test"])
    path = re.search(r"http://localhost:8000(/[^'\"]*)", probe).group(1)
    assert resolve(path).url_name == "health"


def test_the_ray_healthchecks_probe_ray_s_own_ports(config):
    from ray._private import ray_constants

    head = " ".join(config["services"]["ray-head"]["healthcheck"]["test"])
    assert "localhost:8265/api/gcs_healthz" in head
    assert "--dashboard-port=8265" in command_text(config["services"]["ray-head"])
    agent = (
        f"localhost:{ray_constants.DEFAULT_DASHBOARD_AGENT_LISTEN_PORT}/api/local_raylet_healthz"
    )
    for name in ("worker", "ray-worker"):
        assert agent in " ".join(config["services"][name]["healthcheck"]["test"]), name


def test_web_and_worker_start_after_the_migrations_and_a_healthy_database(config):
    for name in ("web", "worker"):
        depends = config["services"][name]["depends_on"]
        assert depends["db"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert "manage.py migrate" in command_text(config["services"]["migrate"])
    assert config["services"]["migrate"]["restart"] == "no"
    assert config["services"]["worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"


def test_the_web_app_runs_gunicorn_with_several_workers(config):
    command = command_text(config["services"]["web"])
    assert command.startswith("gunicorn labeling.wsgi")
    workers = int(re.search(r"--workers=(\d+)", command).group(1))
    assert workers >= 2


def test_the_default_database_url_is_the_bundled_db_service(config):
    db = config["services"]["db"]["environment"]
    url = config["services"]["web"]["environment"]["DATABASE_URL"]
    assert url == (
        f"postgres://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}@db:5432/{db['POSTGRES_DB']}"
    )


def test_every_app_service_reads_the_dot_env_file(raw):
    for name in APP_SERVICES:
        assert raw["services"][name]["env_file"] == ".env", name


def test_every_labelloop_variable_the_compose_file_sets_is_read_by_the_settings(config):
    settings_source = (ROOT / "labeling" / "settings.py").read_text()
    for name in APP_SERVICES:
        for variable in config["services"][name]["environment"]:
            if variable.startswith("LABELLOOP_"):
                assert f'"{variable}"' in settings_source, variable


def test_every_variable_the_compose_file_interpolates_is_in_the_env_example():
    compose = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    variables = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", compose))
    assert variables  # the pattern matches what the file uses
    missing = sorted(v for v in variables if not re.search(rf"^#?\s*{v}=", example, re.M))
    assert missing == [], f"add these to .env.example: {missing}"
