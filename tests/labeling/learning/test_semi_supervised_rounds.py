"""A project with ``semi_supervised`` on: its rounds hand the engine a sample of the images
nobody labeled (drawn anew by each run), and record that they learned from it."""

from __future__ import annotations

import shutil

import pytest

from labeling.images.models import Image, ImageStatus
from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.runs import run_request
from labeling.learning.snapshot import take_snapshot, unlabeled_sample
from labeling.learning.worker import Worker
from tests.factories import digits_project_from, label_first

POOL = 300  # images in the project
LABELED = 60


@pytest.fixture
def small_project(mnist_pngs, alice, bob, tmp_path):
    """300 of the MNIST digits, the first 60 labeled; no run queued."""
    folder, truth = mnist_pngs
    names = sorted(truth)[:POOL]
    (tmp_path / "few").mkdir()
    for name in names:
        shutil.copy(folder / name, tmp_path / "few" / name)
    project = digits_project_from(
        tmp_path / "few", admin=alice, annotator=bob, name="Semi", retrain_every=0
    )
    TrainingRun.objects.filter(project=project).delete()  # its cold start: not this test's
    label_first(project, bob, truth, LABELED)
    return project


def waiting(project) -> set[str]:
    rows = Image.objects.filter(project=project).exclude(status=ImageStatus.LABELED)
    return {str(pk) for pk in rows.values_list("id", flat=True)}


@pytest.mark.django_db
def test_the_sample_is_images_waiting_for_labels_and_the_same_for_the_same_run(small_project):
    project = small_project
    first = [ref.key for ref in unlabeled_sample(project, size=100, seed=7)]
    assert len(set(first)) == 100 and set(first) <= waiting(project)
    assert [ref.key for ref in unlabeled_sample(project, size=100, seed=7)] == first
    assert {ref.key for ref in unlabeled_sample(project, size=100, seed=8)} != set(first)
    # Wrapping around the random keys, a sample as large as the pool is the whole pool.
    everything = {ref.key for ref in unlabeled_sample(project, size=10_000, seed=7)}
    assert everything == waiting(project) and len(everything) == POOL - LABELED


@pytest.mark.django_db
def test_only_a_project_that_asks_for_it_snapshots_a_sample(small_project, settings):
    project = small_project
    settings.LABELLOOP_SEMI_SUPERVISED_POOL = 50
    run, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    assert take_snapshot(run).unlabeled_items == []
    project.semi_supervised = True
    project.save()
    snap = take_snapshot(TrainingRun.objects.get(pk=run.pk))
    assert [r.key for r in snap.unlabeled_items] == [
        r.key for r in unlabeled_sample(project, size=50, seed=run.pk)
    ]
    assert len(snap.items) == LABELED  # the labels are what they were


@pytest.mark.django_db(transaction=True)
def test_a_round_learns_from_a_sample_of_the_unlabeled_pool_and_says_so(
    ray_session, small_project, settings, monkeypatch
):
    project = small_project
    project.semi_supervised = True
    project.save()
    settings.LABELLOOP_SEMI_SUPERVISED_POOL = 60
    settings.LABELLOOP_TRAIN_MIN_STEPS = 8  # a short round: this is about what it is given
    import training.train

    specs, train = [], training.train.run_training

    def spy(spec, **kwargs):
        specs.append(spec)
        return train(spec, **kwargs)

    monkeypatch.setattr(training.train, "run_training", spy)
    run, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
    Worker().run_forever(once=True)
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error

    (spec,) = specs
    keys = [ref.key for ref in spec.unlabeled_items]
    assert len(set(keys)) == 60 and set(keys) <= waiting(project)
    assert keys == [ref.key for ref in unlabeled_sample(project, size=60, seed=run.pk)]
    assert (run.metrics["semi_supervised"], run.metrics["unlabeled_images"]) == (True, 60)
    assert run.metrics["fixmatch"]["unlabeled"] == 60  # the engine trained on all of them
    assert ModelVersion.objects.get(run=run).metrics["semi_supervised"] is True
