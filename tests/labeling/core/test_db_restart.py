"""PostgreSQL restarted under a live gunicorn while annotators post labels: clients see 503s
and retry with the same client_id; no label is lost or doubled; the app recovers by itself.

    .venv/bin/python -m pytest tests/labeling/core/test_db_restart.py -q
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.authtoken.models import Token

from labeling.annotations.models import Annotation
from labeling.core import embedded_pg
from labeling.projects.models import Membership, Role
from tests.factories import ImageFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]
CLIENTS = 4
LABELS_EACH = 12  # acknowledged labels per client; the restart comes after a third of them


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pgdata() -> Path:
    db = settings.DATABASES["default"]
    if "EMBEDDED_PGDATA" not in db:
        pytest.skip("DATABASE_URL is set: this test restarts the embedded PostgreSQL")
    return Path(db["EMBEDDED_PGDATA"])


@pytest.fixture
def server(transactional_db):
    """gunicorn (2 sync workers) on a free loopback port, on this test's database, with
    persistent connections (CONN_MAX_AGE): the case where a restart leaves dead connections."""
    port = free_port()
    params = connection.get_connection_params()
    url = f"postgres://{params['user']}@{quote(params['host'], safe='')}/{params['dbname']}"
    env = {**os.environ, "DATABASE_URL": url, "LABELLOOP_DB_CONN_MAX_AGE": "600"}
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "labeling.wsgi:application", "--workers", "2"),
            *("--bind", f"127.0.0.1:{port}", "--timeout", "60"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{base}/api/", timeout=5)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise AssertionError(process.communicate()[0][-3000:]) from None
            time.sleep(0.2)
    yield base, process
    process.terminate()
    process.communicate(timeout=30)


@dataclass
class Client:
    """One annotator's loop: lease a task, post its label; a failed post is retried with the
    same client_id until the server acknowledges it (what the web UI's outbox does)."""

    base: str
    token: str
    project_id: int
    acked: list[str] = field(default_factory=list)
    # (started at, monotonic; HTTP status or the connection error's name)
    attempts: list[tuple[float, int | str]] = field(default_factory=list)

    def call(self, path: str, body: dict) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = httpx.post(
                self.base + path,
                json=body,
                headers={"Authorization": f"Token {self.token}"},
                timeout=30,
            )
        except httpx.TransportError as exc:
            self.attempts.append((started, type(exc).__name__))
            return None
        self.attempts.append((started, response.status_code))
        return response

    def until_ok(self, path: str, body: dict) -> httpx.Response:
        while True:
            response = self.call(path, body)
            if response is not None and response.status_code < 500:
                return response
            time.sleep(0.2)

    def run(self, labels: int) -> None:
        """Until this client has ``labels`` acknowledged labels in all."""
        while len(self.acked) < labels:
            tasks = self.until_ok(f"/api/projects/{self.project_id}/tasks/next/", {"count": 1})
            assert tasks.status_code == 200, tasks.text
            assert tasks.json(), "the queue ran dry"
            client_id = str(uuid.uuid4())
            body = {"image": tasks.json()[0]["image"], "label": "3", "client_id": client_id}
            response = self.until_ok("/api/annotations/", body)
            assert response.status_code in (200, 201), response.text
            self.acked.append(client_id)
            time.sleep(0.05)  # an annotator's (short) look at the next image


def restart(pgdata: Path, *, down_seconds: float) -> tuple[float, float, float]:
    """Stop the embedded server (fast shutdown: open connections are cut), wait, start it
    again the way an operator would (``manage.py dbserver start``). Returns the monotonic
    times it went down, began starting, and was accepting connections again."""
    assert embedded_pg.stop(pgdata)
    stopped_at = time.monotonic()
    time.sleep(down_seconds)
    restarting_at = time.monotonic()
    start = subprocess.run(
        [sys.executable, "manage.py", "dbserver", "start"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert start.returncode == 0, start.stderr
    connection.close()  # this process's own connection died with the server too
    return stopped_at, restarting_at, time.monotonic()


def run_clients(clients: list[Client], labels_each: int) -> list[threading.Thread]:
    threads = []
    for client in clients:
        threads.append(threading.Thread(target=client.run, args=(labels_each,), daemon=True))
        threads[-1].start()
    return threads


def join(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(timeout=180)
    assert not any(thread.is_alive() for thread in threads)


def test_labels_posted_across_a_database_restart_are_stored_exactly_once(pgdata, server):
    base, gunicorn = server
    project = ImageFactory().project
    ImageFactory.create_batch(CLIENTS * LABELS_EACH * 2, project=project)
    clients = []
    for i in range(CLIENTS):
        user = UserFactory(username=f"annotator-{i}")
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
        token = Token.objects.create(user=user).key
        clients.append(Client(base, token, project.id))

    # 1. A restart while the clients are posting.
    threads = run_clients(clients, LABELS_EACH)
    deadline = time.monotonic() + 120
    while sum(len(c.acked) for c in clients) < CLIENTS * LABELS_EACH // 3:
        assert time.monotonic() < deadline, "the clients did not get going"
        time.sleep(0.05)
    stopped_at, restarting_at, up_at = restart(pgdata, down_seconds=2)
    join(threads)
    attempts = [a for c in clients for a in c.attempts]
    assert {outcome for _, outcome in attempts} <= {200, 201, 503}  # never a 500
    down = [outcome for started, outcome in attempts if stopped_at <= started < restarting_at]
    assert down and all(outcome == 503 for outcome in down), sorted(set(down))
    after = [outcome for started, outcome in attempts if started >= up_at]
    assert after and all(outcome in (200, 201) for outcome in after), sorted(set(after))

    # 2. A restart while nobody is posting (a night-time maintenance): the gunicorn workers'
    # persistent connections are dead but nothing has told them; the next requests must not
    # fail on them (CONN_HEALTH_CHECKS).
    restart(pgdata, down_seconds=0.5)
    for client in clients:
        client.attempts.clear()
    join(run_clients(clients, LABELS_EACH + 2))
    outcomes = [outcome for c in clients for _, outcome in c.attempts]
    assert outcomes and set(outcomes) <= {200, 201}, sorted(set(outcomes))
    assert gunicorn.poll() is None  # recovered both times without a restart of the app

    sent = [client_id for c in clients for client_id in c.acked]
    stored = list(
        Annotation.objects.filter(image__project=project).values_list("client_id", flat=True)
    )
    assert len(sent) == len(set(sent)) == CLIENTS * (LABELS_EACH + 2)
    assert sorted(str(c) for c in stored) == sorted(sent)  # each exactly once; none unsent
