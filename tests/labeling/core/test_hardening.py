"""Deployment hardening: ``check --deploy``, throttled logins, capped uploads, and a scan of
the code for the places where client input could reach SQL, a shell or a file path.

Run: ``LABELLOOP_DATA_DIR=var/test-security .venv/bin/python -m pytest
tests/labeling/core/test_hardening.py -q``
"""

from __future__ import annotations

import ast
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from labeling.images.models import Image
from tests.factories import png_bytes
from tests.labeling.images.helpers import make_zip, upload

ROOT = Path(__file__).resolve().parents[3]
CODE = sorted(p for p in (ROOT / "labeling").rglob("*.py") if "migrations" not in p.parts)


# --- check --deploy -------------------------------------------------------------------------


def production_env(tmp_path: Path) -> dict[str, str]:
    """The environment of a production web process: nothing inherited from the test run's
    LABELLOOP_* settings (which turn secure cookies off), DEBUG off, a real secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELLOOP_")}
    env.pop("DATABASE_URL", None)
    # Set by the browser tests' conftest for their live server; never in a deployment.
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    env.update(
        LABELLOOP_SECRET_KEY=secrets.token_urlsafe(50),
        LABELLOOP_ALLOWED_HOSTS="labels.example.com",
        LABELLOOP_CSRF_TRUSTED_ORIGINS="https://labels.example.com",
        LABELLOOP_SSL_REDIRECT="true",
        LABELLOOP_DATA_DIR=str(tmp_path / "var"),
    )
    return env


def test_check_deploy_is_clean_under_production_settings(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The one silenced check is HSTS preload, an opt-in (settings.py says why).
    assert "System check identified no issues (1 silenced)." in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    env = production_env(tmp_path)
    del env["LABELLOOP_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "LABELLOOP_SECRET_KEY must be set" in result.stderr


# --- throttled logins -----------------------------------------------------------------------


@pytest.fixture
def auth_rate_3_per_minute(settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    cache.clear()


@pytest.mark.django_db
def test_the_session_login_endpoint_is_throttled(alice, auth_rate_3_per_minute):
    client = APIClient()
    responses = [
        client.post("/api/auth/login/", {"username": "alice", "password": "guess"}, format="json")
        for _ in range(5)
    ]
    assert [r.status_code for r in responses] == [400, 400, 400, 429, 429]
    assert responses[-1].json()["error"]["code"] == "throttled"
    assert responses[-1].json()["error"]["details"]["retry_after_seconds"] > 0


@pytest.mark.django_db
def test_a_throttled_client_cannot_log_in_even_with_the_right_password(
    alice, auth_rate_3_per_minute
):
    client = APIClient()
    for _ in range(3):
        client.post("/api/auth/login/", {"username": "alice", "password": "x"}, format="json")
    right = {"username": "alice", "password": "correct horse battery"}
    assert client.post("/api/auth/login/", right, format="json").status_code == 429


# --- capped uploads -------------------------------------------------------------------------


def images_url(project) -> str:
    return f"/api/projects/{project.id}/images/"


@pytest.mark.django_db
def test_an_upload_over_the_request_limit_is_a_413_and_stores_nothing(
    alice, project, as_user, settings, _image_store
):
    settings.LABELLOOP_MAX_UPLOAD_BYTES = 50_000
    files = [upload(f"{i}.png", png_bytes(i, size=100)) for i in range(8)]  # ~10 kB each
    response = as_user(alice).post(images_url(project), {"files": files}, format="multipart")
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "too_large"
    assert "50,000 byte limit" in error["message"]
    assert error["details"]["limit_bytes"] == 50_000
    assert not Image.objects.exists()
    assert not _image_store.exists() or not any(_image_store.rglob("*.png"))


@pytest.mark.django_db
def test_too_many_files_in_one_upload_is_a_413_naming_the_limit(alice, project, as_user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    files = [upload(f"{i}.png", png_bytes(i)) for i in range(4)]
    response = as_user(alice).post(images_url(project), {"files": files}, format="multipart")
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "too_many_files",
        "message": "more than 3 files in one request",
        "details": None,
    }
    assert not Image.objects.exists()


@pytest.mark.django_db
def test_a_json_body_over_the_limit_is_a_413_before_it_is_parsed(bob, project, as_user, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    body = {"image": 1, "label": "x" * 2_000, "client_id": "6c1b0cf4-ef2c-4b47-a3a2-9b1c8a0c1d2e"}
    response = as_user(bob).post("/api/annotations/", body, format="json")
    assert response.status_code == 413
    assert response.json()["error"]["details"]["limit_bytes"] == 1_000


@pytest.mark.django_db
def test_too_many_form_fields_is_a_json_400_not_an_html_page(staff, as_user, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = {f"f{i}": "x" for i in range(20)}
    response = as_user(staff).post("/api/projects/", fields, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_fields"


@pytest.mark.django_db
def test_a_bad_content_length_is_a_400(alice, project, as_user):
    response = as_user(alice).generic(
        "POST", images_url(project), b"", CONTENT_LENGTH="lots", CONTENT_TYPE="text/plain"
    )
    assert response.status_code == 400
    assert "Content-Length" in response.json()["error"]["message"]


# --- client-chosen names never become paths -------------------------------------------------

KEY = re.compile(r"^images/([0-9a-f]{2})/([0-9a-f]{2})/\1\2[0-9a-f]{60}\.(png|jpg)$")
HOSTILE_NAMES = [
    "../../../../escaped.png",
    "/tmp/absolute.png",
    "..\\..\\windows.png",
    "C:\\evil.png",
    "a/../../b.png",
    "%2e%2e%2fencoded.png",
    "nul\x00byte.png",
    "; rm -rf ~ ;.png",
    "$(touch pwned).png",
]


@pytest.mark.django_db
def test_uploaded_file_names_never_become_paths(alice, project, as_user, _image_store, tmp_path):
    files = [upload(name, png_bytes(i)) for i, name in enumerate(HOSTILE_NAMES)]
    archive = make_zip({"ok/../../zipped.png": png_bytes(100), "ok/plain.png": png_bytes(101)})
    files.append(upload("../../archive.zip", archive))
    response = as_user(alice).post(images_url(project), {"files": files}, format="multipart")
    assert response.status_code == 201, response.content
    summary = response.json()["summary"]
    # Every loose file is stored under its hash; the zip's '..' member is refused.
    assert summary == {"created": len(HOSTILE_NAMES) + 1, "duplicate": 0, "rejected": 1}
    for image in Image.objects.all():
        assert KEY.match(image.storage_key), image.storage_key
        assert image.storage_key.split("/")[-1].startswith(image.sha256)
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert all(p in ("media", "media/images") or p.startswith("media/images/") for p in written), (
        written
    )


# --- code scan: SQL, shell, paths -----------------------------------------------------------


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


class StaticText:
    """Decides whether an expression is text fixed in the source: a literal, an f-string,
    ``.format`` or ``.replace`` of such, or a name bound (anywhere in its module) only to
    such. Names bound in another module count when UPPER_CASE, as do UPPER_CASE attributes
    (``predict_requests.CHANNEL``): constants by convention."""

    def __init__(self, module: ast.Module) -> None:
        self.bindings: dict[str, list[ast.expr]] = {}
        for node in ast.walk(module):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        self.bindings.setdefault(target.id, []).append(node.value)
            elif (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and node.value is not None
            ):
                self.bindings.setdefault(node.target.id, []).append(node.value)

    def __call__(self, node: ast.expr, seen: frozenset[str] = frozenset()) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, str | int | float)
        if isinstance(node, ast.JoinedStr):
            return all(
                self(v.value, seen) for v in node.values if isinstance(v, ast.FormattedValue)
            )
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self(node.left, seen) and self(node.right, seen)
        if isinstance(node, ast.Attribute):
            return node.attr.isupper()
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("format", "replace") and self(node.func.value, seen):
                args = [*node.args, *(k.value for k in node.keywords)]
                return all(self(a, seen) for a in args)
            return False
        if isinstance(node, ast.Name):
            if node.id in seen:
                return False
            if node.id in self.bindings:
                return all(self(v, seen | {node.id}) for v in self.bindings[node.id])
            # Unbound here: an imported constant, or a parameter (not fixed in the source).
            return node.id.lstrip("_").isupper()
        return False


SQL_CALLS = {"execute", "executemany", "raw", "extra", "RawSQL"}
# Calls named execute() that are not SQL: the worker's own "execute this run".
NOT_SQL = {("labeling/learning/worker.py", "self"), ("labeling/learning/management", "worker")}
# SQL whose text is assembled from pieces chosen in the same module, never from input.
REVIEWED_SQL = {
    "labeling/annotations/services.py": "_lease(): the ORDER BY and extra WHERE are chosen by "
    "task_lease_next from literals in this module; every value is a %(name)s parameter",
    "labeling/core/backup.py": "table and column names the apps registered (their models' "
    "db_table and fields) or the database's own catalogue, quoted as identifiers",
    "labeling/core/store_sweep.py": "table and column names of the store references the apps "
    "registered (their models' metadata), quoted as identifiers; keys and marks are parameters",
    "labeling/core/db_cascade.py": "a migration operation: table, column and constraint names "
    "from the models' metadata and the catalogue, quoted as identifiers",
    "labeling/learning/predict_server.py": "LISTEN on the channel names the listener classes "
    "declare as constants (predict_requests.CHANNEL, explanations.CHANNEL, ...)",
    "labeling/learning/similar.py": "the index table is similar_p<project id> (an int), its "
    "vector size and HNSW options ints from the code; vectors and ids are parameters",
}


def sql_calls(path: Path):
    for node in ast.walk(parsed(path)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name not in SQL_CALLS:
            continue
        receiver = getattr(getattr(func, "value", None), "id", None)
        if any(rel(path).startswith(p) and receiver == r for p, r in NOT_SQL):
            continue
        yield node


def test_every_sql_statement_is_fixed_text_with_values_as_parameters():
    """No query text is built from a value at run time (f-string, %, .format or + of a
    variable); values go in the driver's parameters. A new exception needs a reason in
    REVIEWED_SQL."""
    offenders, reviewed_seen = [], set()
    for path in CODE:
        static = StaticText(parsed(path))
        for call in sql_calls(path):
            if not call.args:
                continue
            if static(call.args[0]):
                continue
            if rel(path) in REVIEWED_SQL:
                reviewed_seen.add(rel(path))
                continue
            offenders.append(f"{rel(path)}:{call.lineno}: {ast.unparse(call)[:120]}")
    assert offenders == [], "SQL text built from values:\n" + "\n".join(offenders)
    assert reviewed_seen == set(REVIEWED_SQL), "stale REVIEWED_SQL entries"


def test_the_sql_scan_catches_text_built_from_a_variable(tmp_path):
    bad = ast.parse("def f(cursor, name):\n    cursor.execute(f'SELECT * FROM t WHERE n = {name}')")
    good = ast.parse(
        "T = 'images'\nQ = f'SELECT * FROM {T} WHERE id = %s'\n"
        "def f(cursor, pk):\n    cursor.execute(Q, [pk])"
    )
    for module, expected in ((bad, False), (good, True)):
        call = next(n for n in ast.walk(module) if isinstance(n, ast.Call))
        assert StaticText(module)(call.args[0]) is expected


# Modules that may start processes, and why. None of them is reachable from an HTTP request.
SUBPROCESS_ALLOWED = {
    "labeling/web/management/commands/demo.py": "starts `manage.py worker` beside the server",
    "labeling/core/backup.py": "runs pg_dump / pg_restore / psql for manage.py backup|restore",
    "labeling/core/pg_tools.py": "runs pg_dump / pg_restore / psql for manage.py backup|restore",
}


# Catching one of these (a library's process timing out) starts nothing.
SUBPROCESS_ERRORS = {"SubprocessError", "TimeoutExpired", "CalledProcessError"}


def test_no_shell_and_processes_only_from_operator_commands():
    offenders = []
    for path in CODE:
        module = parsed(path)
        for node in ast.walk(module):
            if isinstance(node, ast.keyword) and node.arg == "shell":
                offenders.append(f"{rel(path)}:{node.value.lineno}: shell=")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                if node.value.id == "os" and node.attr in {"system", "popen", "execv", "execvp"}:
                    offenders.append(f"{rel(path)}:{node.lineno}: os.{node.attr}")
                if (
                    node.value.id == "subprocess"
                    and node.attr not in SUBPROCESS_ERRORS
                    and rel(path) not in SUBPROCESS_ALLOWED
                ):
                    offenders.append(f"{rel(path)}:{node.lineno}: subprocess.{node.attr}")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                is_spawn = getattr(node.func.value, "id", None) == "subprocess" and (
                    node.func.attr in {"run", "Popen", "call", "check_call", "check_output"}
                )
                if is_spawn and node.args and not isinstance(node.args[0], ast.List | ast.Name):
                    offenders.append(f"{rel(path)}:{node.lineno}: argv is not a list")
    assert offenders == []


PATH_SINKS = {"open", "Path", "join", "save", "path", "storage_put", "extract", "extractall"}
CLIENT_NAMES = {"name", "original_name", "filename"}
# `.name`s that are the server's own files, not a client's.
OWN_FILES = {
    ("labeling/exports/management/commands/export.py", "handle"): "its own temporary file",
}


def test_no_file_path_is_built_from_a_name_the_client_chose():
    """Uploaded and archive member names are shown back to the client and stored as text;
    storage keys are content hashes. No call that names a file takes one of them, and no
    archive is ever extracted to disk."""
    offenders = []
    for path in CODE:
        for node in ast.walk(parsed(path)):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in {"extract", "extractall"}:
                offenders.append(f"{rel(path)}:{node.lineno}: {name}()")
            if name not in PATH_SINKS:
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                for sub in ast.walk(arg):
                    receiver = getattr(getattr(sub, "value", None), "id", None)
                    if (rel(path), receiver) in OWN_FILES:
                        continue
                    if isinstance(sub, ast.Attribute) and sub.attr in CLIENT_NAMES:
                        offenders.append(f"{rel(path)}:{node.lineno}: {ast.unparse(node)[:100]}")
    assert offenders == []
