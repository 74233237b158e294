"""``GET /api/health/``: what docker compose and load balancers probe.

.venv/bin/python -m pytest tests/labeling/core/test_health.py -q
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.django_db
def test_health_answers_ok_without_credentials_when_the_database_answers():
    response = APIClient().get("/api/health/")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True}


@pytest.mark.django_db
def test_health_ignores_a_bad_token_instead_of_answering_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/health/").status_code == 200


@pytest.mark.django_db
def test_health_is_not_redirected_to_https_when_ssl_redirect_is_on(settings):
    settings.SECURE_SSL_REDIRECT = True
    assert APIClient().get("/api/projects/").status_code == 301  # everything else is
    assert APIClient().get("/api/health/").status_code == 200


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_health_answers_503_with_the_error_body_when_the_database_is_down(tmp_path):
    # A real process whose DATABASE_URL points at a port where no PostgreSQL listens.
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://nobody:nothing@127.0.0.1:{closed_port()}/labelloop",
        "LABELLOOP_DATA_DIR": str(tmp_path),
    }
    probe = (
        "from django.test import Client; import json; r = Client().get('/api/health/'); "
        "print(json.dumps({'code': r.status_code, 'body': r.json()}))"
    )
    done = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", probe],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["code"] == 503
    assert answer["body"]["status"] == "unavailable"
    assert answer["body"]["database"] is False
    assert answer["body"]["error"]["code"] == "database_unavailable"
