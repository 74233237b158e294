"""``manage.py sweep_store``: files left by deleted projects go, files still used by another
project or a model version stay, young files and foreign files are never touched, and an
upload that reuses a file while it is being swept keeps it."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command

from labeling.core import store_sweep as sweep
from labeling.images import services as image_services
from labeling.images.models import Image
from labeling.learning.models import ModelVersion, TrainingRun
from labeling.projects.models import Membership, Role
from labeling.projects.services import project_delete
from tests.factories import ProjectFactory
from tests.labeling.images.helpers import png, post_files

pytestmark = pytest.mark.django_db

DAY = 24 * 3600


def age(store, *keys: str, seconds: float = 2 * DAY) -> None:
    past = time.time() - seconds
    for key in keys:
        os.utime(store / key, (past, past))


def key_of(image_id: int) -> str:
    return Image.objects.get(pk=image_id).storage_key


@pytest.fixture
def two_projects(alice, as_user):
    a, b = ProjectFactory(slug="a"), ProjectFactory(slug="b")
    for project in (a, b):
        Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    client = as_user(alice)
    in_a = post_files(client, a, **{"only-a.png": png(1), "shared.png": png(2)})
    in_b = post_files(client, b, **{"shared.png": png(2), "only-b.png": png(3)})
    keys = {
        "only-a": key_of(in_a["only-a.png"]),
        "shared": key_of(in_b["shared.png"]),
        "only-b": key_of(in_b["only-b.png"]),
    }
    run = TrainingRun.objects.create(project=a, trigger="manual", status="succeeded")
    keys["model-a"] = default_storage.save("models/a/run-1.pt", ContentFile(b"weights" * 100))
    ModelVersion.objects.create(
        project=a, run=run, number=1, checkpoint_key=keys["model-a"], architecture="seed_cnn",
        labels_used=0,
    )  # fmt: skip
    return a, b, keys


def test_a_deleted_projects_files_go_and_shared_ones_stay(two_projects, _image_store):
    a, b, keys = two_projects
    foreign = _image_store / "notes" / "readme.txt"  # not LabelLoop's: never looked at
    foreign.parent.mkdir(parents=True)
    foreign.write_text("keep me")
    project_delete(project=a)
    age(_image_store, *keys.values())
    age(_image_store, "notes/readme.txt")

    dry = sweep.store_sweep(dry_run=True)
    assert sorted(dry.deleted) == sorted([keys["only-a"], keys["model-a"]])
    assert all((_image_store / k).exists() for k in keys.values())  # a dry run deletes nothing

    done = sweep.store_sweep()
    assert sorted(done.deleted) == sorted([keys["only-a"], keys["model-a"]])
    assert (done.scanned, done.referenced, done.too_recent, done.missing) == (4, 2, 0, 0)
    assert done.deleted_bytes == len(png(1)) + len(b"weights" * 100)
    assert not (_image_store / keys["only-a"]).exists()
    assert not (_image_store / keys["model-a"]).exists()
    for image in Image.objects.filter(project=b):  # b's images, the shared one included
        with default_storage.open(image.storage_key, "rb") as f:
            assert f.read()
    assert foreign.read_text() == "keep me"
    assert sweep.store_sweep().deleted == []  # nothing left to do


def test_young_orphans_wait_for_a_later_sweep(two_projects, _image_store):
    a, _b, keys = two_projects
    project_delete(project=a)  # the files keep their fresh mtimes: an upload could be in flight
    summary = sweep.store_sweep(min_age=timedelta(hours=1))
    assert summary.deleted == [] and summary.too_recent == 2
    assert sorted(sweep.store_sweep(min_age=timedelta(0)).deleted) == sorted(
        [keys["only-a"], keys["model-a"]]
    )


def test_a_file_referenced_again_after_the_walk_is_not_deleted(two_projects, _image_store):
    a, b, keys = two_projects
    project_delete(project=a)
    age(_image_store, keys["only-a"])
    marks = sweep._marks()  # the walk begins ...
    reused = Image.objects.create(  # ... and an upload of the same bytes commits meanwhile
        project=b, sha256=keys["only-a"].rsplit("/", 1)[1].split(".")[0],
        storage_key=keys["only-a"], width=32, height=32, mode="RGB", format="PNG",
        original_name="again.png", size_bytes=len(png(1)),
    )  # fmt: skip
    summary = sweep.SweepSummary(dry_run=False)
    sweep._delete([(keys["only-a"], 1)], marks, summary)
    assert summary.deleted == [] and summary.kept_late == 1
    assert default_storage.exists(reused.storage_key)


def test_an_upload_reusing_a_file_swept_under_it_writes_it_back(
    two_projects, _image_store, alice, as_user, monkeypatch
):
    a, b, keys = two_projects
    project_delete(project=a)
    write_files = image_services._write_files

    def swept_right_after(**kwargs):
        write_files(**kwargs)  # finds only-a's file still there: reuses it, writes nothing
        assert kwargs["created_keys"] == []
        default_storage.delete(keys["only-a"])  # a sweep deletes it before the rows commit

    monkeypatch.setattr(image_services, "_write_files", swept_right_after)
    ids = post_files(as_user(alice), b, **{"again.png": png(1)})
    image = Image.objects.get(pk=ids["again.png"])
    assert image.storage_key == keys["only-a"]
    with default_storage.open(image.storage_key, "rb") as f:
        assert f.read() == png(1)


def test_the_command_reports_and_lists(two_projects, _image_store):
    a, _b, keys = two_projects
    project_delete(project=a)
    age(_image_store, *keys.values())
    out = io.StringIO()
    call_command("sweep_store", "--dry-run", stdout=out)
    text = out.getvalue()
    assert keys["only-a"] in text and keys["model-a"] in text
    assert "4 files scanned, 2 in use; would delete 2 unreferenced" in text
    out = io.StringIO()
    call_command("sweep_store", stdout=out)
    assert "deleted 2 unreferenced" in out.getvalue()
    assert not (_image_store / keys["only-a"]).exists()
    with pytest.raises(Exception, match="min-age-hours must be 0 or more"):
        call_command("sweep_store", "--min-age-hours", "-1")


def test_files_that_rows_name_and_the_store_lacks_are_reported_and_nothing_changes(
    two_projects, _image_store
):
    _a, _b, keys = two_projects
    (_image_store / keys["shared"]).unlink()  # lost: a store restored short of the database
    (_image_store / keys["model-a"]).unlink()
    summary = sweep.store_sweep(dry_run=True)
    assert (summary.missing, summary.missing_sample) == (
        2,
        sorted([keys["shared"], keys["model-a"]]),
    )
    assert summary.deleted == [] and summary.referenced == 2
    out = io.StringIO()
    call_command("sweep_store", "--dry-run", stdout=out)
    assert "missing from the image store: 2 files that rows name" in out.getvalue()
    assert keys["shared"] in out.getvalue()
    # The merge's tail: with no file left, every key the rows name is reported.
    for key in (keys["only-a"], keys["only-b"]):
        (_image_store / key).unlink()
    summary = sweep.store_sweep(dry_run=True)
    assert summary.missing == 4 and summary.scanned == 0
