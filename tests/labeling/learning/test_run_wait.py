"""Why a queued run waits (``wait`` on a training run): its place in the lane's line and what
is running, said in words (issue 28: 58 s at "queued · 0%" while the worker served another
project, and nothing said so)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.learning.models import RunLane, RunStatus, RunTrigger, TrainingRun
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


def _run(project, status=RunStatus.QUEUED, lane=RunLane.MAIN, age_s=0.0) -> TrainingRun:
    trigger = RunTrigger.PRETRAIN if lane == RunLane.BACKGROUND else RunTrigger.MANUAL
    run = TrainingRun.objects.create(project=project, trigger=trigger, lane=lane, status=status)
    TrainingRun.objects.filter(pk=run.pk).update(
        created_at=timezone.now() - timedelta(seconds=age_s)
    )
    run.refresh_from_db()
    return run


def wait_of(client, run) -> dict | None:
    response = client.get(f"/api/training-runs/{run.id}/")
    assert response.status_code == 200, response.content
    return response.json()["wait"]


def test_a_run_behind_other_projects_says_the_worker_is_busy_and_its_place(alice, as_user, project):
    other, third = ProjectFactory(), ProjectFactory()
    _run(other, RunStatus.RUNNING, age_s=120)
    _run(third, age_s=90)  # queued before ours
    _run(other, lane=RunLane.BACKGROUND, age_s=80)  # another lane: not in our line
    mine = _run(project, age_s=58)
    wait = wait_of(as_user(alice), mine)
    assert wait["reason"] == "worker_busy"
    assert (wait["position"], wait["ahead"], wait["running_elsewhere"]) == (2, 1, 1)
    assert wait["waited_seconds"] >= 58
    assert "busy with 1 run of other projects" in wait["message"]
    assert "1 run is ahead in line" in wait["message"]
    assert other.name not in wait["message"] and third.name not in wait["message"]


def test_a_run_behind_its_own_project_s_run_says_so(alice, as_user, project):
    running = _run(project, RunStatus.RUNNING, age_s=30)
    mine = _run(project, age_s=5)
    wait = wait_of(as_user(alice), mine)
    assert wait["reason"] == "project_busy"
    assert f"run #{running.id}" in wait["message"]
    assert wait_of(as_user(alice), running) is None  # only a queued run waits


def test_a_run_nobody_picks_up_asks_whether_a_worker_runs(alice, as_user, project, settings):
    settings.LABELLOOP_WORKER_STALE_SECONDS = 60
    fresh = _run(project, age_s=2)
    assert wait_of(as_user(alice), fresh)["reason"] == "starting"
    TrainingRun.objects.filter(pk=fresh.pk).update(
        created_at=timezone.now() - timedelta(seconds=300)
    )
    wait = wait_of(as_user(alice), fresh)
    assert wait["reason"] == "no_worker" and wait["position"] == 1
    assert "manage.py worker" in wait["message"]
    listed = as_user(alice).get(f"/api/projects/{project.id}/training-runs/").json()
    assert listed[0]["wait"]["reason"] == "no_worker"


def test_stats_say_how_many_labels_until_the_next_automatic_round(bob, as_user, project):
    from tests.factories import ImageFactory

    project.retrain_every = 5
    project.save()
    ImageFactory.create_batch(3, project=project, status="labeled", consensus_label="1")
    stats = as_user(bob).get(f"/api/projects/{project.id}/stats/").json()
    assert stats["next_round"] == {"every": 5, "labels_until": 2}
    TrainingRun.objects.create(
        project=project, trigger=RunTrigger.MANUAL, status=RunStatus.SUCCEEDED, labels_snapshot=3
    )
    stats = as_user(bob).get(f"/api/projects/{project.id}/stats/").json()
    assert stats["next_round"]["labels_until"] == 5
    project.retrain_every = 0
    project.save()
    assert as_user(bob).get(f"/api/projects/{project.id}/stats/").json()["next_round"] is None
