"""A worker or a simulation pointed at a database nobody migrated says so and names the fix,
instead of a traceback about a missing table."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from labeling.core.migration_state import unapplied_migrations

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def empty_database():
    name = f"fresh_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f'CREATE DATABASE "{name}"')
    params = connection.get_connection_params()
    yield f"postgres://{params['user']}@{quote(params['host'], safe='')}/{name}"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def manage(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "LABELLOOP_DEBUG": "1"}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_test_database_is_current():
    assert unapplied_migrations() == []


@pytest.mark.parametrize("command", [["worker", "--once"], ["simulate", "--seeds", "1"]])
def test_a_command_on_an_unmigrated_database_names_the_fix(empty_database, command):
    done = manage(empty_database, *command)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "unapplied migration" in done.stderr
    assert "run `python manage.py migrate` first" in done.stderr
    assert "Traceback" not in done.stderr
