"""A pretraining run interrupted: cancelled by an admin while it trains (it stops mid-stage,
registers nothing), and its worker SIGKILLed (the next worker resumes from the state file
the first one left: one backbone, never two, never half-written).

    .venv/bin/python -m pytest tests/labeling/learning/test_pretrain_runs.py -q
"""

from __future__ import annotations

import shutil
import signal
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from labeling.learning.jobs.base import run_workdir, run_workdir_name
from labeling.learning.models import (
    Backbone,
    ImageEmbedding,
    RunLane,
    RunStatus,
    RunTrigger,
    TrainingRun,
)
from labeling.learning.runs import run_request
from labeling.learning.worker import Worker
from tests.factories import digits_project_from
from tests.labeling.learning.test_worker_faults import start_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def pool(mnist_pngs, tmp_path, alice, bob):
    folder, truth = mnist_pngs
    target = tmp_path / "pool"
    target.mkdir()
    for name in sorted(truth)[:300]:
        shutil.copy(folder / name, target / name)
    project = digits_project_from(target, admin=alice, annotator=bob, name="Pre", retrain_every=0)
    TrainingRun.objects.filter(project=project).update(status=RunStatus.CANCELLED)  # cold start
    return project


def test_cancelling_a_pretraining_stops_it_while_it_trains(
    pool, settings, alice, as_user, ray_session
):
    settings.LABELLOOP_PRETRAIN_WIDTH = 4
    run, _ = run_request(
        project=pool, trigger=RunTrigger.PRETRAIN, params={"epochs": 10_000, "minutes": 30}
    )
    worker = Worker(poll_seconds=0.1, lanes=[RunLane.BACKGROUND])

    def serve() -> None:
        try:
            worker.run_forever(predict=False)
        finally:
            connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, stage="pretrain", progress__gt=0.021)
            .exists(),
            timeout=120,
            what="the pretraining to make progress",
        )  # fmt: skip
        answer = as_user(alice).post(f"/api/training-runs/{run.pk}/cancel/")
        assert answer.status_code == 200
        # Without a stop inside the stage this would take 30 minutes, not seconds.
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, status=RunStatus.CANCELLED).exists(),
            timeout=120,
            what="the run to be cancelled mid-pretraining",
        )
    finally:
        worker.stopping.set()
        thread.join(timeout=60)
    assert not Backbone.objects.filter(project=pool).exists()
    assert not ImageEmbedding.objects.filter(image__project=pool).exists()


def test_a_worker_killed_mid_pretraining_is_resumed_once_by_the_next(pool, ray_session):
    run, _ = run_request(
        project=pool, trigger=RunTrigger.PRETRAIN, params={"epochs": 40, "minutes": 30}
    )
    media = Path(settings.STORAGES["default"]["OPTIONS"]["location"])  # the worker's data dir
    state = media.parent / "worker" / run_workdir_name(run) / "pretrain-state.pt"
    env = {"LABELLOOP_PRETRAIN_WIDTH": "4"}
    first = start_worker(ray_session, **env)
    try:
        wait_for(state.exists, timeout=180, what="the first epoch's state file")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # orphaned
    assert not Backbone.objects.filter(project=pool).exists()

    second = start_worker(ray_session, **env)
    try:
        wait_for(
            lambda: TrainingRun.objects.filter(
                pk=run.pk, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
            ).exists(),
            timeout=300,
            what="the second worker to finish the pretraining",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        output, _ = second.communicate(timeout=60)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error or output[-3000:]
    assert run.attempts == 2
    backbone = Backbone.objects.get(project=pool)
    assert backbone.run_id == run.pk
    metrics = backbone.metrics
    assert metrics["resumed_from_epoch"] >= 1, metrics
    assert metrics["epochs_run"] == 40 and len(metrics["loss_curve"]) == 40
    assert ImageEmbedding.objects.filter(backbone=backbone).count() == 300


def test_a_run_id_handed_out_again_never_resumes_the_older_runs_state(pool):
    """A database restored from a backup hands out run ids again while the data dir keeps the
    later runs' files: the new run with an old id gets a folder of its own."""
    old, _ = run_request(project=pool, trigger=RunTrigger.PRETRAIN, params={"epochs": 1})
    (run_workdir(old) / "pretrain-state.pt").write_bytes(b"an older run's state")
    TrainingRun.objects.filter(pk=old.pk).delete()
    table = TrainingRun._meta.db_table
    with connection.cursor() as cursor:  # what a restore does to the id sequence
        cursor.execute(
            "SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", [table, old.pk]
        )
    new, _ = run_request(project=pool, trigger=RunTrigger.PRETRAIN, params={"epochs": 1})
    assert new.pk == old.pk
    assert run_workdir(new) != run_workdir(old)
    assert not (run_workdir(new) / "pretrain-state.pt").exists()
