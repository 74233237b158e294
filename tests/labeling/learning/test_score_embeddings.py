"""A round on a backbone scores the pool from the stored embeddings, not through the ResNet,
and measures the backbone's probe again on the round's labels.

    .venv/bin/python -m pytest tests/labeling/learning/test_score_embeddings.py -q

Through the product: a project of 60 real digits imports a ResNet-18 (width 4, random
weights, torchvision's layout) through the API, and the worker embeds every image; then two
rounds, the second after an upload and with the other images' files gone.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile

import labeling.learning.jobs.head
import labeling.learning.jobs.scoring
from labeling.core.storage import storage_local_path
from labeling.images.models import Image
from labeling.learning.models import (
    Backbone,
    ImageEmbedding,
    ImageScore,
    ModelVersion,
    RunStatus,
    RunTrigger,
    TrainingRun,
)
from labeling.learning.runs import run_request
from labeling.learning.worker import Worker
from labeling.learning.writeback import cache_dir, image_refs, local_checkpoint
from tests.factories import ImageFactory, digits_project_from, label_first
from training.backbones import build_resnet
from training.contracts import ScoreSpec
from training.embed import run_embedding
from training.score import run_scoring

pytestmark = pytest.mark.django_db(transaction=True)

IMAGES = 60


@pytest.fixture(scope="module")
def sixty_pngs(mnist_pngs, tmp_path_factory):
    folder, truth = mnist_pngs
    target = tmp_path_factory.mktemp("mnist60")
    names = sorted(truth)[:IMAGES]
    for name in names:
        shutil.copy(folder / name, target / name)
    return target, {name: truth[name] for name in names}


@pytest.fixture
def project(sixty_pngs, alice, bob):
    folder, truth = sixty_pngs
    project = digits_project_from(
        folder, admin=alice, annotator=bob, name="Stored scores", retrain_every=0
    )
    TrainingRun.objects.filter(project=project).update(status=RunStatus.CANCELLED)  # cold start
    return project, truth


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The worker runs in this process: one torch thread, as in tests/training, so the head
    fits and probes do not fight Ray's processes for the two cores (measured here under load:
    a probe of 20 labels took 15 s on two threads, 0.4 s on one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def resnet_calls(monkeypatch):
    """Every image the round puts through the ResNet (embedding or scoring on pixels)."""
    seen: list[str] = []

    def embedding(spec, **kwargs):
        seen.extend(item.key for item in spec.items)
        return run_embedding(spec, **kwargs)

    def scoring(spec, **kwargs):
        seen.extend(item.key for item in spec.items)
        return run_scoring(spec, **kwargs)

    monkeypatch.setattr(labeling.learning.jobs.head, "run_embedding", embedding)
    monkeypatch.setattr(labeling.learning.jobs.scoring, "run_scoring", scoring)
    return seen


def import_backbone(project, alice, as_user, tmp_path) -> Backbone:
    """Upload random ResNet-18 weights (width 4) in torchvision's layout; the worker imports
    them and embeds every image."""
    torch.manual_seed(0)
    net = build_resnet("resnet18", width=4, stem="small", in_channels=3, num_classes=10)
    path = tmp_path / "resnet18-random.pth"
    torch.save(net.state_dict(), path)
    body = {"file": SimpleUploadedFile(path.name, path.read_bytes()), "input_size": 28}
    answer = as_user(alice).post(f"/api/projects/{project.pk}/backbones/", body, format="multipart")
    assert answer.status_code == 202, answer.content
    run_all()
    backbone = Backbone.objects.get(project=project)
    assert ImageEmbedding.objects.filter(backbone=backbone).count() == IMAGES
    return backbone


def run_all() -> None:
    Worker(poll_seconds=0.1).run_forever(once=True, predict=False)


def a_round(project) -> ModelVersion:
    before = ModelVersion.objects.filter(project=project).count()
    run_request(project=project, trigger=RunTrigger.MANUAL)
    run_all()
    version = ModelVersion.objects.get(project=project, number=before + 1)
    assert version.run.status == RunStatus.SUCCEEDED, version.run.error
    return version


def pixel_scoring(project, version: ModelVersion):
    """What scoring the pool through the ResNet on Ray gives for ``version``."""
    rows = Image.objects.filter(project=project).values_list("id", "sha256", "storage_key")
    return run_scoring(
        ScoreSpec(
            checkpoint_path=local_checkpoint(version.checkpoint_key),
            items=tuple(image_refs(list(rows))),
            cache_dir=str(cache_dir()),
            strategy=str(project.strategy),  # the enum would not unpickle in a Ray worker
        )
    )


def assert_scored_as_on_pixels(project, version: ModelVersion) -> None:
    """The queue's stored predictions and scores are the ResNet's, within float16 rounding."""
    stored = {s.image_id: s for s in ImageScore.objects.filter(image__project=project)}
    assert len(stored) == IMAGES and {s.model_version for s in stored.values()} == {version}
    pixels = pixel_scoring(project, version)
    ids = [int(k) for k in pixels.keys]
    probs = np.array([stored[i].probabilities for i in ids])
    np.testing.assert_allclose(probs, pixels.probabilities, atol=5e-3)
    top2 = np.sort(pixels.probabilities, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.01  # not a tie within the rounding
    predicted = np.array([stored[i].predicted for i in ids])
    assert (predicted[clear] == pixels.predicted[clear]).all()
    np.testing.assert_allclose([stored[i].score for i in ids], pixels.scores, atol=5e-3)


def test_rounds_on_a_backbone_score_from_stored_embeddings_and_probe_it_on_their_labels(
    project, alice, as_user, tmp_path, resnet_calls, ray_session, settings
):
    project, truth = project
    settings.LABELLOOP_PROMOTE_ONLY_IF_NOT_WORSE = False  # its check scores on pixels
    backbone = import_backbone(project, alice, as_user, tmp_path)
    assert backbone.metrics["probe"]["note"] == "no labels yet"

    # Round 1: every image has its embedding, so none goes through the ResNet; the scores
    # are what the ResNet would give; the backbone's probe is now on the round's 20 labels.
    label_first(project, alice, truth, 20)
    first = a_round(project)
    assert first.backbone == backbone and first.is_active
    assert resnet_calls == []
    assert_scored_as_on_pixels(project, first)
    backbone.refresh_from_db()
    assert backbone.metrics["probe"]["labels"] == backbone.metrics["probe_labels"] == 20
    assert backbone.metrics["probe_version"] == first.number

    # Round 2: an upload, an image that can no longer be read, and the 60 embedded images'
    # files and decoded arrays deleted (on pixels, all 60 would fail to be read).
    newcomer = ImageFactory(project=project, seed=7)
    broken = ImageFactory(project=project, seed=8)
    Path(storage_local_path(key=broken.storage_key)).write_bytes(b"no longer a PNG")
    old = Image.objects.filter(project=project).exclude(pk__in=[newcomer.pk, broken.pk])
    for key in old.values_list("storage_key", flat=True):
        Path(storage_local_path(key=key)).unlink(missing_ok=True)
    shutil.rmtree(cache_dir())
    label_first(project, alice, truth, 32, start=20)
    second = a_round(project)
    assert second.is_active and second.labels_used == 32
    # Only the two without an embedding went through the ResNet; the newcomer's is kept.
    assert sorted(resnet_calls) == sorted([str(newcomer.pk), str(broken.pk)])
    assert ImageEmbedding.objects.filter(backbone=backbone, image=newcomer).exists()
    scored = ImageScore.objects.filter(image__project=project, model_version=second)
    assert scored.count() == IMAGES + 1  # the 60 without their files, and the newcomer
    # The unreadable one is reported failed, as on pixels: not scored, no embedding kept.
    assert not ImageScore.objects.filter(image=broken).exists()
    assert not ImageEmbedding.objects.filter(image=broken).exists()

    backbone.refresh_from_db()
    assert backbone.metrics["probe_labels"] == backbone.metrics["probe"]["labels"] == 32
    assert backbone.metrics["probe_run"] == second.run_id
    assert backbone.metrics["probe_at_registration"]["note"] == "no labels yet"  # kept
    listed = as_user(alice).get(f"/api/projects/{project.pk}/backbones/").json()
    assert listed[0]["metrics"]["probe_labels"] == 32
