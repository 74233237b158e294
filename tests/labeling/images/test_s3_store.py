"""The S3 image store (``LABELLOOP_STORAGE=s3``) against a real S3 API over HTTP.

S3 lives off this machine, so the bucket is moto's S3 server (tests/s3.py); everything on
LabelLoop's side is what production runs: django-storages' ``S3Storage`` with the options
``labeling/settings.py`` builds, boto3 talking HTTP to the endpoint. Uploads land
in the bucket (nothing on local disk), image bytes and exports stream back from it, the worker
trains and scores from local copies and stores its checkpoints there, predictions load them
back, and ``sweep_store`` removes what a deleted project left. And when the bucket fails (an
object missing, the bucket gone, the endpoint down) every request says so with a 4xx or 503,
never a 500, and nothing stored is lost.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import threading
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from labeling.annotations.services import annotation_submit
from labeling.core import store_sweep as sweep
from labeling.images.models import Image
from labeling.learning import writeback
from labeling.learning.models import ImageScore, ModelVersion, RunStatus, TrainingRun
from labeling.learning.worker import Predictor, Worker
from labeling.projects.models import Membership, Role
from labeling.projects.services import project_delete
from tests.factories import ProjectFactory, digits_project_from
from tests.labeling.images.helpers import media_files, png, post_files, upload
from tests.s3 import dead_endpoint, s3_settings


@pytest.fixture
def admin_project(alice):
    project = ProjectFactory(slug=f"s3-{uuid.uuid4().hex[:8]}")
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    return project


@pytest.mark.django_db
def test_uploads_land_in_the_bucket_once_and_come_back_byte_for_byte(
    s3_store, admin_project, alice, as_user
):
    client = as_user(alice)
    files = {"a.png": png(1), "b.png": png(2)}
    ids = post_files(client, admin_project, **files)
    keys = {name: Image.objects.get(pk=i).storage_key for name, i in ids.items()}
    assert s3_store.keys("images/") == sorted(keys.values())
    for name, key in keys.items():
        assert s3_store.read(key) == files[name]
        assert key.endswith(f"{hashlib.sha256(files[name]).hexdigest()}.png")
    assert media_files(s3_store.disk) == []  # nothing went to local disk

    # The same bytes again, in another project: one object, two rows.
    other = ProjectFactory(slug=f"s3-{uuid.uuid4().hex[:8]}")
    Membership.objects.create(project=other, user=alice, role=Role.ADMIN)
    again = post_files(client, other, **{"copy-of-a.png": files["a.png"]})
    assert Image.objects.get(pk=again["copy-of-a.png"]).storage_key == keys["a.png"]
    assert s3_store.keys("images/") == sorted(keys.values())

    response = client.get(f"/api/images/{ids['b.png']}/file/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == files["b.png"]
    assert response["Content-Type"] == "image/png"
    assert "immutable" in response["Cache-Control"]


@pytest.mark.django_db
def test_an_image_folder_export_streams_its_files_from_the_bucket(
    s3_store, admin_project, alice, bob, as_user
):
    Membership.objects.create(project=admin_project, user=bob, role=Role.ANNOTATOR)
    files = {"one.png": png(3), "two.png": png(4)}
    ids = post_files(as_user(alice), admin_project, **files)
    label = admin_project.labels[0]
    for image in Image.objects.filter(pk__in=ids.values()).select_related("project"):
        annotation_submit(image=image, user=bob, label=label, client_id=uuid.uuid4())
    response = as_user(alice).get(
        f"/api/projects/{admin_project.id}/export/?format=imagefolder&labeled=true"
    )
    assert response.status_code == 200, response.content[:300]
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    by_name = {n.split("-", 1)[1]: archive.read(n) for n in archive.namelist()}
    assert by_name == files

    # An object gone from the bucket: the export still completes and says which one.
    gone = Image.objects.get(pk=ids["two.png"])
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=gone.storage_key)
    response = as_user(alice).get(
        f"/api/projects/{admin_project.id}/export/?format=imagefolder&labeled=true"
    )
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    names = archive.namelist()
    assert [n.split("-", 1)[1] for n in names[:-1]] == ["one.png"]
    assert names[-1] == "export-errors.txt"
    report = archive.read("export-errors.txt").decode()
    assert f"{gone.id}\ttwo.png\tFileNotFoundError" in report


@pytest.mark.django_db
def test_a_deleted_projects_objects_are_swept_from_the_bucket(
    s3_store, admin_project, alice, as_user
):
    keep = ProjectFactory(slug=f"s3-{uuid.uuid4().hex[:8]}")
    Membership.objects.create(project=keep, user=alice, role=Role.ADMIN)
    client = as_user(alice)
    gone = post_files(client, admin_project, **{"only.png": png(5), "shared.png": png(6)})
    kept = post_files(client, keep, **{"shared.png": png(6)})
    only_key = Image.objects.get(pk=gone["only.png"]).storage_key
    shared_key = Image.objects.get(pk=kept["shared.png"]).storage_key
    run = TrainingRun.objects.create(project=admin_project, trigger="manual", status="succeeded")
    model_key = default_storage.save(f"models/{admin_project.slug}/m.pt", ContentFile(b"w" * 64))
    ModelVersion.objects.create(
        project=admin_project, run=run, number=1, checkpoint_key=model_key,
        architecture="seed_cnn", labels_used=0,
    )  # fmt: skip
    s3_store.client.put_object(Bucket=s3_store.bucket, Key="notes/readme.txt", Body=b"keep me")
    project_delete(project=admin_project)

    # Objects just written are too young for the default age; nothing goes.
    assert sweep.store_sweep().deleted == []
    done = sweep.store_sweep(min_age=timedelta(0))
    assert sorted(done.deleted) == sorted([only_key, model_key])
    assert (done.scanned, done.referenced, done.missing) == (3, 1, 0)
    assert s3_store.keys() == sorted(["notes/readme.txt", shared_key])
    assert sweep.store_sweep(min_age=timedelta(0)).deleted == []


@pytest.mark.django_db
def test_an_object_missing_from_the_bucket_is_a_404_that_says_so(
    s3_store, admin_project, alice, as_user
):
    client = as_user(alice)
    ids = post_files(client, admin_project, **{"a.png": png(7)})
    key = Image.objects.get(pk=ids["a.png"]).storage_key
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=key)
    response = client.get(f"/api/images/{ids['a.png']}/file/")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "file_missing"
    assert "missing from the image store" in error["message"]


def rejected_upload(client, project, data: bytes) -> dict:
    """Upload one file that the image store must refuse; its result row."""
    response = client.post(
        f"/api/projects/{project.id}/images/",
        {"files": [upload("new.png", data)]},
        format="multipart",
    )
    assert response.status_code == 200, response.content
    (row,) = response.json()["results"]
    assert row["status"] == "rejected"
    assert "could not write to the image store" in row["reason"]
    return row


@pytest.mark.django_db
def test_a_bucket_that_is_gone_rejects_uploads_with_the_reason_and_keeps_the_rest(
    s3_store, admin_project, alice, as_user
):
    client = as_user(alice)
    before = post_files(client, admin_project, **{"kept.png": png(8)})
    s3_store.client.delete_object(
        Bucket=s3_store.bucket, Key=Image.objects.get(pk=before["kept.png"]).storage_key
    )
    s3_store.client.delete_bucket(Bucket=s3_store.bucket)
    row = rejected_upload(client, admin_project, png(9))
    assert "NoSuchBucket" in row["reason"]
    assert list(Image.objects.values_list("original_name", flat=True)) == ["kept.png"]
    # The earlier image's object went with the bucket: a 404 that says so, not a 500.
    response = client.get(f"/api/images/{before['kept.png']}/file/")
    assert response.status_code == 404, response.content
    assert response.json()["error"]["code"] == "file_missing"


@pytest.mark.django_db
def test_an_unreachable_store_rejects_uploads_and_reads_with_a_clear_error(
    s3_store, admin_project, alice, as_user, settings
):
    client = as_user(alice)
    before = post_files(client, admin_project, **{"kept.png": png(10)})
    out_of_reach = s3_settings(bucket=s3_store.bucket, endpoint=dead_endpoint())
    settings.STORAGES = {**settings.STORAGES, "default": out_of_reach["default"]}
    rejected_upload(client, admin_project, png(11))
    assert Image.objects.count() == 1
    response = client.get(f"/api/images/{before['kept.png']}/file/")
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    assert "image store could not be read" in error["message"]
    with pytest.raises(CommandError, match="the image store could not be read"):
        call_command("sweep_store", "--dry-run", stdout=io.StringIO())


@pytest.mark.django_db
def test_a_remote_checkpoint_is_never_served_from_a_stale_local_copy(s3_store, admin_project):
    """Local copies of remote objects are kept by key, so a key must never name two
    contents: two checkpoints stored for the same run (a re-run after a database restore
    reuses run ids) get two keys, and each reads back as itself."""
    run = TrainingRun.objects.create(project=admin_project, trigger="manual", status="running")
    first = writeback.checkpoint_store(project=admin_project, run=run, path=_file(b"first" * 50))
    assert Path(writeback.local_checkpoint(first)).read_bytes() == b"first" * 50
    second = writeback.checkpoint_store(project=admin_project, run=run, path=_file(b"second" * 50))
    assert second != first
    assert Path(writeback.local_checkpoint(second)).read_bytes() == b"second" * 50
    # Storing the same weights again (a worker that died after uploading) writes nothing new.
    again = writeback.checkpoint_store(project=admin_project, run=run, path=_file(b"second" * 50))
    assert again == second
    assert s3_store.keys("models/") == sorted([first, second])


def _file(data: bytes) -> str:
    path = Path(writeback.cache_dir()) / "tmp-test" / f"{uuid.uuid4().hex}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def small_mnist_project(mnist_pngs, alice, bob, tmp_path):
    """300 real MNIST digits, uploaded through ingest into the current image store."""
    folder, truth = mnist_pngs
    subset = tmp_path / "digits"
    subset.mkdir()
    names = sorted(truth)[:300]
    for name in names:
        shutil.copy(folder / name, subset / name)
    project = digits_project_from(
        subset, admin=alice, annotator=bob, name="MNIST on S3", retrain_every=0
    )
    assert Image.objects.filter(project=project).count() == len(names)
    return project, {name: truth[name] for name in names}


@pytest.mark.django_db(transaction=True)
def test_the_worker_trains_scores_and_predicts_from_the_bucket(
    settings, ray_session, s3_store, small_mnist_project, alice, bob, as_user, tmp_path
):
    project, truth = small_mnist_project
    image_keys = set(Image.objects.filter(project=project).values_list("storage_key", flat=True))
    assert set(s3_store.keys("images/")) == image_keys and len(image_keys) == 300
    assert media_files(s3_store.disk) == []

    # A data dir of its own: no local copy and no decoded array from an earlier test. One
    # image's object is gone from the bucket: the runs go on without it and say so.
    settings.DATA_DIR = tmp_path / "data"
    lost = Image.objects.filter(project=project).order_by("pk").last()
    s3_store.client.delete_object(Bucket=s3_store.bucket, Key=lost.storage_key)

    Worker(poll_seconds=0.1).run_forever(once=True)  # the cold start copies the pool
    cold = TrainingRun.objects.get(project=project)
    assert cold.status == RunStatus.SUCCEEDED, cold.error
    assert cold.metrics["failed_items"] == 1
    copies = Path(settings.DATA_DIR) / "cache" / "objects"
    for key in image_keys - {lost.storage_key}:
        assert hashlib.sha256((copies / key).read_bytes()).hexdigest() in key
    assert not (copies / lost.storage_key).exists()

    ordered = sorted(
        Image.objects.filter(project=project).exclude(pk=lost.pk), key=lambda i: -i.priority
    )
    for image in ordered[:120]:
        label = truth[image.original_name]
        annotation_submit(image=image, user=bob, label=label, client_id=uuid.uuid4())
    response = as_user(alice).post(f"/api/projects/{project.id}/training-runs/")
    assert response.status_code == 202
    Worker(poll_seconds=0.1).run_forever(once=True)
    run = TrainingRun.objects.get(pk=response.json()["id"])
    assert run.status == RunStatus.SUCCEEDED, run.error
    version = ModelVersion.objects.get(run=run)
    assert version.is_active
    assert version.checkpoint_key in s3_store.keys("models/")
    assert ImageScore.objects.filter(model_version=version).count() == 299
    assert not ImageScore.objects.filter(image=lost).exists()

    # Predictions load the checkpoint back from the bucket: the same model the worker scored
    # the pool with, so the same probabilities for the same images.
    labeled = {image.pk for image in ordered[:120]}
    picks = [i for i in Image.objects.filter(project=project).order_by("pk") if i.pk not in labeled]
    picks = picks[:10]
    files = [SimpleUploadedFile(i.original_name, s3_store.read(i.storage_key)) for i in picks]
    stop = threading.Event()
    Predictor(stop).start()
    try:
        response = as_user(bob).post(
            f"/api/projects/{project.id}/predict/",
            {"files": files},
            format="multipart",
        )
    finally:
        stop.set()
    assert response.status_code == 200, response.content
    results = response.json()["results"]
    assert [r["model_version"] for r in results] == [version.number] * len(picks)
    classes = project.labels
    for image, result in zip(picks, results, strict=True):
        scored = ImageScore.objects.get(image=image)
        expected = dict(zip(classes, scored.probabilities, strict=True))
        assert result["probabilities"] == pytest.approx(expected, abs=2e-3)
