"""A project deleted while the worker trains it: the run ends quietly (it is gone with its
project), nothing is written back, no error is logged, and the worker takes the next run."""

from __future__ import annotations

import logging

import pytest

from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.runs import run_request
from labeling.learning.worker import Worker
from labeling.projects.models import Project
from labeling.projects.services import project_delete
from tests.factories import digits_project_from, label_first


@pytest.mark.django_db(transaction=True)
def test_a_project_deleted_mid_run_ends_its_run_quietly(
    ray_session, mnist_project, mnist_pngs, alice, bob, monkeypatch, caplog
):
    project, truth = mnist_project
    project.retrain_every = 0
    project.save()
    label_first(project, bob, truth, 60)
    import training.train

    train = training.train.run_training

    def train_then_delete(spec, **kwargs):
        result = train(spec, **kwargs)
        project_delete(project=Project.objects.get(pk=project.pk))  # an admin, meanwhile
        return result

    monkeypatch.setattr(training.train, "run_training", train_then_delete)
    doomed, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    caplog.set_level(logging.INFO, logger="labeling.learning")
    Worker().run_forever(once=True)
    monkeypatch.setattr(training.train, "run_training", train)

    assert not TrainingRun.objects.filter(pk=doomed.pk).exists()
    assert not ModelVersion.objects.exists()
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert errors == [], [r.getMessage() for r in errors]
    assert any(
        f"run {doomed.pk}: its project was deleted" in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]

    # The worker carries on with another project's run.
    folder, _ = mnist_pngs
    other = digits_project_from(folder, admin=alice, annotator=bob, name="next", retrain_every=0)
    label_first(other, bob, truth, 60)
    TrainingRun.objects.filter(project=other).delete()  # its cold start: not this test's
    run, _ = run_request(project=other, trigger=RunTrigger.MANUAL)
    Worker().run_forever(once=True)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
