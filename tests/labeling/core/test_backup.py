"""``manage.py backup`` and ``manage.py restore``: a project with its images, labels and model
versions goes out to a folder and comes back, byte for byte, into a brand-new embedded
PostgreSQL data dir and image store.

Run: ``LABELLOOP_DATA_DIR=var/test-security .venv/bin/python -m pytest
tests/labeling/core/test_backup.py -q``
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from labeling.annotations.models import Annotation
from labeling.images.models import Image
from labeling.images.services import images_ingest
from labeling.images.sources import file_source
from labeling.learning.models import ModelVersion, RunStatus, TrainingRun
from tests.factories import png_bytes
from tests.s3 import dead_endpoint

ROOT = Path(__file__).resolve().parents[3]

# Printed by `manage.py shell` in the restored deployment: its rows and the bytes it serves.
INSPECT = """
import hashlib, json
from django.core.files.storage import default_storage
from labeling.annotations.models import Annotation
from labeling.images.models import Image
from labeling.learning.models import ModelVersion
from labeling.projects.models import Project

def digest(key):
    with default_storage.open(key, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()

print(json.dumps({
    "projects": sorted(Project.objects.values_list("slug", flat=True)),
    "images": {i.sha256: digest(i.storage_key) for i in Image.objects.all()},
    "labels": sorted(Annotation.objects.values_list("image__sha256", "label")),
    "checkpoints": {v.number: digest(v.checkpoint_key) for v in ModelVersion.objects.all()},
}))
"""


def manage(*args: str, data_dir: Path, **settings: str) -> subprocess.CompletedProcess:
    """A manage.py command in another deployment: its own data dir, database and store."""
    env = {**os.environ, "LABELLOOP_DATA_DIR": str(data_dir), **settings}
    env["LABELLOOP_MEDIA_ROOT"] = str(data_dir / "media")
    env.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def labeled_project(project, alice, bob):
    """Five images (files in the store), labels on two, a run and two model versions with
    checkpoint files. Committed: pg_dump sees only committed rows."""
    sources = [
        file_source(io.BytesIO(png_bytes(seed)), name=f"{seed}.png", max_bytes=10**6)
        for seed in range(5)
    ]
    report = images_ingest(project=project, user=alice, sources=sources)
    assert report.summary["created"] == 5
    images = list(Image.objects.order_by("id"))
    for image, label in zip(images[:2], ["3", "7"], strict=True):
        Annotation.objects.create(image=image, annotator=bob, label=label, client_id=uuid.uuid4())
    checkpoints = {}
    for number in (1, 2):
        run = TrainingRun.objects.create(
            project=project, trigger="manual", status=RunStatus.SUCCEEDED
        )
        data = f"checkpoint {number} ".encode() * 1000
        key = default_storage.save(f"models/{project.slug}/run-{run.pk}.pt", ContentFile(data))
        ModelVersion.objects.create(
            project=project,
            run=run,
            number=number,
            checkpoint_key=key,
            architecture="seed_cnn",
            labels_used=2,
            is_active=number == 2,
        )
        checkpoints[str(number)] = hashlib.sha256(data).hexdigest()
    return {
        "projects": [project.slug],
        "images": {i.sha256: i.sha256 for i in images},  # a file's hash is its name's hash
        "labels": sorted([[images[0].sha256, "3"], [images[1].sha256, "7"]]),
        "checkpoints": checkpoints,
    }


@pytest.mark.django_db(transaction=True)
def test_a_backup_restores_into_a_fresh_deployment_byte_for_byte(labeled_project, tmp_path):
    backup = tmp_path / "backup"
    out = io.StringIO()
    call_command("backup", out=backup, stdout=out)
    assert "dumping the database" in out.getvalue()  # progress, step by step
    assert "copying files: 7/7 files" in out.getvalue()
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["counts"]["images"] == 5
    assert manifest["counts"]["model_versions"] == 2
    assert manifest["media"]["files"] == 7 and manifest["media"]["missing"] == []

    fresh = tmp_path / "fresh"
    restored = manage("restore", "--from", str(backup), data_dir=fresh)
    assert restored.returncode == 0, restored.stderr
    assert "restore complete" in restored.stdout
    assert "restoring files: 7/7 files" in restored.stdout

    seen = manage("shell", "-c", INSPECT, data_dir=fresh)
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout.strip().splitlines()[-1]) == labeled_project


@pytest.mark.django_db(transaction=True)
def test_with_an_s3_store_the_backup_is_the_database_and_restores_onto_the_bucket(
    s3_store, labeled_project, tmp_path
):
    backup = tmp_path / "backup"
    out = io.StringIO()
    call_command("backup", out=backup, stdout=out)
    assert "not a local folder (S3): sync the bucket separately" in out.getvalue()
    manifest = json.loads((backup / "manifest.json").read_text())
    assert (manifest["storage"], manifest["media"]) == ("s3", None)
    assert sorted(p.name for p in backup.iterdir()) == ["database.dump", "manifest.json"]

    # A new deployment on the same bucket: the rows come back and every file they name reads.
    fresh = tmp_path / "fresh"
    restored = manage("restore", "--from", str(backup), data_dir=fresh, **s3_store.env)
    assert restored.returncode == 0, restored.stderr
    assert "restore complete" in restored.stdout
    assert "the bucket holds all 7 files the rows name" in restored.stdout
    seen = manage("shell", "-c", INSPECT, data_dir=fresh, **s3_store.env)
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout.strip().splitlines()[-1]) == labeled_project
    assert not (fresh / "media").exists()

    # Onto a bucket short of one file (synced back too early, say): restored, with a warning
    # that names the file and what to do.
    lost = next(key for key in s3_store.keys("images/"))
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=lost)
    again = manage("restore", "--from", str(backup), data_dir=tmp_path / "again", **s3_store.env)
    assert again.returncode == 0, again.stderr
    warning = f"warning: missing from the bucket: 1 file that the rows name (e.g. {lost})"
    assert warning in again.stdout
    assert "sweep_store --dry-run" in again.stdout

    # With the bucket out of reach the database is still restored, and the output says the
    # check is left to do.
    blind = manage(
        "restore", "--from", str(backup), data_dir=tmp_path / "blind",
        **{**s3_store.env, "LABELLOOP_S3_ENDPOINT_URL": dead_endpoint()},
    )  # fmt: skip
    assert blind.returncode == 0, blind.stderr
    assert "warning: could not check the bucket" in blind.stdout
    assert "restore complete" in blind.stdout


@pytest.mark.django_db(transaction=True)
def test_restore_refuses_a_database_that_is_not_empty_unless_forced(labeled_project, tmp_path):
    backup = tmp_path / "backup"
    call_command("backup", out=backup, stdout=io.StringIO())
    fresh = tmp_path / "fresh"
    assert manage("migrate", "-v0", data_dir=fresh).returncode == 0

    refused = manage("restore", "--from", str(backup), data_dir=fresh)
    assert refused.returncode != 0
    assert "is not empty" in refused.stderr and "--force" in refused.stderr

    forced = manage("restore", "--from", str(backup), "--force", data_dir=fresh)
    assert forced.returncode == 0, forced.stderr
    assert "dropping the existing tables" in forced.stdout


@pytest.mark.django_db
def test_a_backup_needs_a_new_folder(tmp_path):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "something").write_text("x")
    with pytest.raises(CommandError, match="not empty"):
        call_command("backup", out=tmp_path / "old", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_a_damaged_dump_is_refused_before_anything_is_touched(labeled_project, tmp_path):
    backup = tmp_path / "backup"
    call_command("backup", out=backup, stdout=io.StringIO())
    with (backup / "database.dump").open("ab") as handle:
        handle.write(b"tampered")
    fresh = tmp_path / "fresh"
    result = manage("restore", "--from", str(backup), data_dir=fresh)
    assert result.returncode != 0
    assert "does not match the manifest's SHA-256" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_a_forced_restore_that_fails_keeps_what_it_was_to_replace(labeled_project, tmp_path):
    backup = tmp_path / "backup"
    call_command("backup", out=backup, stdout=io.StringIO())
    fresh = tmp_path / "fresh"
    assert manage("restore", "--from", str(backup), data_dir=fresh).returncode == 0
    # A dump cut short before its checksum was taken: it passes the check, then pg_restore
    # fails partway through, after the schema's statements and before the last table's rows.
    broken = tmp_path / "broken"
    shutil.copytree(backup, broken)
    dump = broken / "database.dump"
    dump.write_bytes(dump.read_bytes()[:-200])
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["database"]["sha256"] = hashlib.sha256(dump.read_bytes()).hexdigest()
    (broken / "manifest.json").write_text(json.dumps(manifest))

    failed = manage("restore", "--from", str(broken), "--force", data_dir=fresh)
    assert failed.returncode != 0

    # The --force drops ran in the restore's transaction: they were rolled back with it.
    seen = manage("shell", "-c", INSPECT, data_dir=fresh)
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout.strip().splitlines()[-1]) == labeled_project
    assert "pg_restore failed (exit 1), nothing was changed" in failed.stderr, failed.stderr
    assert "could not read from input file" in failed.stderr  # pg_restore's own words


# Run in the target deployment: from now on its server refuses every CREATE TABLE (an event
# trigger is a database object, so the --force drops leave it in place).
REFUSE_CREATE_TABLE = """
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute(
        "CREATE FUNCTION refuse_ddl() RETURNS event_trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'this server takes no new tables'; END $$"
    )
    cursor.execute(
        "CREATE EVENT TRIGGER refuse_create ON ddl_command_end "
        "WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION refuse_ddl()"
    )
"""


@pytest.mark.django_db(transaction=True)
def test_a_forced_restore_whose_sql_the_server_refuses_keeps_what_it_was_to_replace(
    labeled_project, tmp_path
):
    backup = tmp_path / "backup"
    call_command("backup", out=backup, stdout=io.StringIO())
    fresh = tmp_path / "fresh"
    assert manage("restore", "--from", str(backup), data_dir=fresh).returncode == 0
    refuse = manage("shell", "-c", REFUSE_CREATE_TABLE, data_dir=fresh)
    assert refuse.returncode == 0, refuse.stderr

    # The dump is whole; the drops succeed, then the server refuses the first CREATE TABLE.
    failed = manage("restore", "--from", str(backup), "--force", data_dir=fresh)
    assert failed.returncode != 0

    seen = manage("shell", "-c", INSPECT, data_dir=fresh)
    assert seen.returncode == 0, seen.stderr
    assert json.loads(seen.stdout.strip().splitlines()[-1]) == labeled_project
    assert "psql failed (exit 3), nothing was changed" in failed.stderr, failed.stderr
    assert "this server takes no new tables" in failed.stderr  # the server's own words
