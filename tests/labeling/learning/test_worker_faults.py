"""A worker SIGKILLed mid-run: a second worker finishes the run, exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning.models import ImageScore, ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.services import run_request

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]


def start_worker(ray_address: str) -> subprocess.Popen:
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
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--poll", "0.2"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.parametrize("kill_in", ["train", "score"])
def test_a_killed_worker_run_is_finished_by_another_without_duplicates(
    ray_session, mnist_project, bob, kill_in
):
    project, truth = mnist_project
    names = dict(Image.objects.filter(project=project).values_list("original_name", "id"))
    for name in sorted(names)[:120]:
        image = Image.objects.select_related("project").get(pk=names[name])
        annotation_submit(image=image, user=bob, label=truth[name], client_id=uuid.uuid4())
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
    assert "stopped" in output

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
