"""``make demo`` as a person runs it: ``manage.py demo`` in its own process, with its own
embedded database, a real worker and a real Ray. Ctrl-C, SIGTERM and a closed terminal stop
the web server, the worker and the database; a worker whose demo was killed outright stops by
itself; a port already taken is refused before anything starts."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from labeling.core import embedded_pg

ROOT = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 180  # migrate, collectstatic, a worker starting Ray on a busy machine
STOP_SECONDS = 90


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """One data directory for the module, set up once (the 5,000 MNIST digits imported)."""
    data = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "manage.py", "demo", "--no-serve"],
        cwd=ROOT,
        env=_env(data),
        capture_output=True,
        text=True,
        timeout=STARTUP_SECONDS,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    yield data
    embedded_pg.stop(data / "pgdata")  # whatever a failed test left running


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "RAY_ADDRESS"}}
    env.update(LABELLOOP_DATA_DIR=str(data), LABELLOOP_DEBUG="true")
    return env


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Demo:
    def __init__(self, data: Path, port: int) -> None:
        self.log = data / f"demo-{port}.log"
        self.port = port
        self.data = data
        with self.log.open("w") as out:
            # Its own session, as a terminal's job is its own process group.
            self.process = subprocess.Popen(
                [sys.executable, "manage.py", "demo", "--addr", f"127.0.0.1:{port}"],
                cwd=ROOT,
                env=_env(data),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = STARTUP_SECONDS) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.process.poll() is not None:
                break
            time.sleep(0.5)
        raise AssertionError(f"no {pattern!r} in the demo's output:\n{self.output()[-3000:]}")

    def serving(self) -> int:
        """Wait until the web server answers and the worker is ready; the worker's pid."""
        worker = int(self.wait_for(r"worker:\s+pid (\d+)").group(1))
        self.wait_for(rf"worker \S+:{worker} ready")
        url = f"http://127.0.0.1:{self.port}/api/health/"
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    return worker
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    tail = self.output()[-3000:]
                    raise AssertionError(f"{url} never answered:\n{tail}") from None
                time.sleep(0.5)


def _gone(pid: int, timeout: float = STOP_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.5)
    return False


def _database_stopped(data: Path, timeout: float = STOP_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not embedded_pg.status(data / "pgdata")["running"]:
            return True
        time.sleep(0.5)
    return False


@pytest.fixture
def demo(demo_dir):
    started: list[Demo] = []

    def start() -> Demo:
        started.append(Demo(demo_dir, _free_port()))
        return started[-1]

    yield start
    for one in started:  # a failed test leaves nothing behind
        if one.process.poll() is None:
            os.killpg(one.process.pid, signal.SIGKILL)
            one.process.wait()


def test_ctrl_c_stops_the_web_server_the_worker_and_the_database(demo, demo_dir):
    one = demo()
    worker = one.serving()
    os.killpg(one.process.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    one.process.wait(timeout=STOP_SECONDS)
    assert _gone(worker), f"the worker (pid {worker}) outlived the demo"
    assert _database_stopped(demo_dir), "the embedded database outlived the demo"
    assert "Traceback" not in one.output(), one.output()[-3000:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_or_a_closed_terminal_stops_the_worker_too(demo, demo_dir, signum):
    one = demo()
    worker = one.serving()
    one.process.send_signal(signum)  # to the demo alone, as `kill` or a process manager does
    assert one.process.wait(timeout=STOP_SECONDS) == 128 + signum
    assert _gone(worker), f"the worker (pid {worker}) outlived the demo"
    assert _database_stopped(demo_dir), "the embedded database outlived the demo"


def test_a_worker_whose_demo_was_killed_stops_by_itself(demo, demo_dir):
    one = demo()
    worker = one.serving()
    one.process.kill()  # SIGKILL: no handler, no finally
    one.process.wait()
    assert _gone(worker), f"the worker (pid {worker}) kept running without its demo"
    assert _database_stopped(demo_dir), "the embedded database outlived its last user"


def test_a_port_already_taken_is_refused_before_anything_starts(demo_dir):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "manage.py", "demo", "--addr", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=_env(demo_dir),
            capture_output=True,
            text=True,
            timeout=STARTUP_SECONDS,
        )
    assert result.returncode == 1
    assert f"127.0.0.1:{port} is already in use" in result.stderr
    assert f"make demo DEMO_ADDR=127.0.0.1:{port + 1}" in result.stderr
    assert "worker:" not in result.stdout  # no worker was started, so none is left behind
