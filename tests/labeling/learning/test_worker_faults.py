"""A worker SIGKILLed mid-run (in train, in score, inside the write-back transaction): another
worker finishes the run, exactly once, and the queue is never half-updated.

    .venv/bin/python -m pytest tests/labeling/learning/test_worker_faults.py -q
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from labeling.images.models import Image
from labeling.learning.models import ImageScore, ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.runs import run_request
from tests.factories import label_first

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


def start_worker(ray_address: str, **extra_env: str) -> subprocess.Popen:
    media = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    params = connection.get_connection_params()
    url = f"postgres://{params['user']}@{quote(params['host'], safe='')}/{params['dbname']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "RAY_ADDRESS": ray_address,
        "LABELLOOP_WORKER_HEARTBEAT_SECONDS": "0.5",
        "LABELLOOP_WORKER_STALE_SECONDS": "3",
        # The same (temporary) image store as this test's.
        "LABELLOOP_MEDIA_ROOT": str(media),
        "LABELLOOP_DATA_DIR": str(media.parent),
        **extra_env,
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--poll", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, timeout: float, what: str, fail: bool = True):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    if fail:
        raise AssertionError(f"timed out waiting for {what}")
    return None


@pytest.mark.parametrize("kill_in", ["train", "score"])
def test_a_killed_worker_run_is_finished_by_another_without_duplicates(
    ray_session, mnist_project, bob, kill_in
):
    project, truth = mnist_project
    label_first(project, bob, truth, 120)
    run, _ = run_request(project=project, trigger=RunTrigger.MANUAL)

    first = start_worker(ray_session)
    try:
        wait_for(
            lambda: TrainingRun.objects.filter(pk=run.pk, stage=kill_in).exists(),
            timeout=120,
            what=f"the run to reach {kill_in}",
        )
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING  # orphaned: nobody will heartbeat it again

    second = start_worker(ray_session)
    try:
        wait_for(
            lambda: TrainingRun.objects.filter(
                pk=run.pk, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
            ).exists(),
            timeout=240,
            what="the second worker to finish the run",
        )
    finally:
        second.send_signal(signal.SIGTERM)  # and it stops cleanly
        output, _ = second.communicate(timeout=60)
    assert second.returncode == 0, output[-3000:]
    assert "SIGTERM received; stopping after this stage" in output
    assert "stopped" in output
    assert len(re.findall(r"worker \S+ ready", output)) == 1, output[-3000:]

    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    assert run.attempts == 2
    assert ModelVersion.objects.filter(project=project).count() == 1
    version = ModelVersion.objects.get(project=project)
    assert version.run_id == run.pk and version.is_active
    scores = ImageScore.objects.filter(image__project=project)
    assert scores.count() == Image.objects.filter(project=project).count()
    assert set(scores.values_list("model_version_id", flat=True)) == {version.pk}
    assert not Image.objects.filter(project=project, predicted_label=None).exists()


def run_to_the_end(ray_address: str, run: TrainingRun) -> None:
    """One worker, until ``run`` has finished; then it is stopped cleanly."""
    worker = start_worker(ray_address)
    try:
        finished = wait_for(
            lambda: TrainingRun.objects.filter(
                pk=run.pk, status__in=[RunStatus.SUCCEEDED, RunStatus.FAILED]
            ).exists(),
            timeout=300,
            what=f"run {run.pk} to finish",
            fail=False,
        )
    finally:
        worker.send_signal(signal.SIGTERM)
        output, _ = worker.communicate(timeout=60)
    assert finished, f"run {run.pk} did not finish; worker output:\n{output[-3000:]}"
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error or output[-3000:]


def write_back_waiting_for_a_lock() -> bool:
    """A worker's transaction waits on a row lock to demote the active model version."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            'AND query LIKE \'UPDATE "learning_modelversion" SET "is_active"%%\''
        )
        return cursor.fetchone() is not None


def queue_state(project) -> dict[int, tuple]:
    """What annotators and the dashboard see: priority and prediction of every image, and
    which model version each stored score came from."""
    scores = dict(
        ImageScore.objects.filter(image__project=project).values_list(
            "image_id", "model_version_id"
        )
    )
    return {
        image_id: (priority, predicted, confidence, scores.get(image_id))
        for image_id, priority, predicted, confidence in Image.objects.filter(
            project=project
        ).values_list("id", "priority", "predicted_label", "confidence")
    }


def test_a_worker_killed_inside_the_write_back_leaves_the_old_queue_whole(
    ray_session, mnist_project, bob
):
    project, truth = mnist_project
    label_first(project, bob, truth, 120)
    first, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    run_to_the_end(ray_session, first)
    old_version = ModelVersion.objects.get(run=first)
    old = queue_state(project)
    assert {version for *_, version in old.values()} == {old_version.pk}

    second, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    # Hold model 1's row: the second run's write-back, which demotes it, waits for it after
    # the COPY of the new scores and the queue UPDATE, inside its open transaction.
    with psycopg.connect(**connection.get_connection_params()) as holder:
        holder.execute(
            "SELECT id FROM learning_modelversion WHERE id = %s FOR UPDATE", [old_version.pk]
        )
        paused = start_worker(ray_session)
        try:
            wait_for(
                write_back_waiting_for_a_lock,
                timeout=240,
                what="the second run's write-back to reach the version promotion",
            )
            # The new scores are COPYed and the queue UPDATEd inside the open transaction:
            # everyone else still sees the old model's queue, all of it.
            assert queue_state(project) == old
        finally:
            paused.send_signal(signal.SIGKILL)
            paused.wait(timeout=30)
        holder.rollback()
    assert queue_state(project) == old  # the kill rolled the whole write-back back
    second.refresh_from_db()
    assert second.status == RunStatus.RUNNING  # orphaned: the next worker takes it over

    run_to_the_end(ray_session, second)
    second.refresh_from_db()
    assert second.attempts == 2
    new_version = ModelVersion.objects.get(run=second)  # registered once, reused on resume
    assert ModelVersion.objects.filter(project=project).count() == 2
    assert list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == [
        new_version.pk
    ]
    new = queue_state(project)
    assert new.keys() == old.keys()
    assert {version for *_, version in new.values()} == {new_version.pk}
    changed = [i for i in new if new[i][:3] != old[i][:3]]
    assert len(changed) > len(new) // 2  # the new model's queue replaced the old one


@pytest.mark.django_db(transaction=True)  # the worker closes and reopens its connection
def test_a_worker_says_ready_once_however_often_it_polls_once(caplog):
    from labeling.learning.worker import Worker

    worker = Worker()
    with caplog.at_level("INFO", logger="labeling.learning.worker"):
        for _ in range(3):
            worker.run_forever(once=True)  # bench.round's loop: nothing queued, returns
    assert [r.getMessage() for r in caplog.records].count(f"worker {worker.name} ready") == 1
