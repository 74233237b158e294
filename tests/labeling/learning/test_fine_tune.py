"""After a round on a backbone fits its head, a fine-tune trains every layer of that model
(issue 25): queued by itself, giving way to any other run, registered and promoted like a
round, and scored through its own network rather than the backbone's stored embeddings.

    .venv/bin/python -m pytest tests/labeling/learning/test_fine_tune.py -q

Through the worker, on the 60 real digits of test_score_embeddings (its fixtures), with a
ResNet-18 at width 4 and random weights imported through the API.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import pytest

from labeling.learning.models import (
    ImageScore,
    ModelVersion,
    RunStatus,
    RunTrigger,
    TrainingRun,
)
from labeling.learning.runs import run_request
from labeling.learning.services import run_maybe_fine_tune
from tests.factories import label_first
from tests.labeling.learning import test_score_embeddings as stored
from tests.labeling.learning.test_score_embeddings import (
    IMAGES,
    a_round,
    assert_scored_as_on_pixels,
    import_backbone,
    run_all,
)

# test_score_embeddings' project of 60 digits, one torch thread, and its count of the images
# that go through the ResNet.
sixty_pngs = stored.sixty_pngs
digits_project = stored.project
one_torch_thread = stored.one_torch_thread
resnet_calls = stored.resnet_calls

pytestmark = pytest.mark.django_db(transaction=True)

STEPS = 20


@pytest.fixture
def fine_tuning(settings):
    settings.LABELLOOP_FINE_TUNE_STEPS = STEPS
    settings.LABELLOOP_PROMOTE_ONLY_IF_NOT_WORSE = False  # every new version orders the queue
    return settings


def test_the_product_fine_tunes_by_default_and_refuses_a_bad_learning_rate():
    """The suite turns it off for the head rounds' own tests (tests/pytest_env.py); a
    deployment that says nothing gets it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABELLOOP_FINE_TUNE")}
    code = "import django; django.setup(); from django.conf import settings; "
    code += "print(settings.LABELLOOP_FINE_TUNE_STEPS, settings.LABELLOOP_FINE_TUNE_LR, "
    code += "settings.LABELLOOP_FINE_TUNE_SEMI_SUPERVISED)"
    env |= {"DJANGO_SETTINGS_MODULE": "labeling.settings"}
    run = functools.partial(subprocess.run, [sys.executable, "-c", code], capture_output=True)
    out = run(env=env, text=True, check=True)
    assert out.stdout.split() == ["300", "0.001", "True"]
    refused = run(env=env | {"LABELLOOP_FINE_TUNE_LR": "0"}, text=True)
    assert refused.returncode != 0
    assert "LABELLOOP_FINE_TUNE_LR must be above 0, got '0'" in refused.stderr


def test_a_head_round_is_followed_by_a_fine_tune_that_scores_through_its_own_network(
    digits_project, alice, as_user, tmp_path, resnet_calls, ray_session, fine_tuning
):
    project, truth = digits_project
    backbone = import_backbone(project, alice, as_user, tmp_path)
    label_first(project, alice, truth, 20)

    head = a_round(project)  # the worker also runs what the round queued: the fine-tune
    tune = TrainingRun.objects.get(project=project, trigger=RunTrigger.FINE_TUNE)
    assert tune.status == RunStatus.SUCCEEDED, tune.error
    assert tune.params == {"base_version": head.pk}
    assert head.metrics["trained"] == "head on frozen backbone features"

    tuned = ModelVersion.objects.get(run=tune)
    assert tuned.number == head.number + 1 and tuned.is_active
    assert tuned.backbone == backbone and tuned.labels_used == 20
    assert tuned.metrics["trained"] == "fine-tuned"
    assert tuned.metrics["base_version"] == head.number
    assert tuned.metrics["steps"] == STEPS
    # It learned from the 40 images nobody labeled too (FixMatch), though the project's own
    # rounds do not (semi_supervised is off).
    assert not project.semi_supervised and not head.metrics["semi_supervised"]
    assert tuned.metrics["semi_supervised"] and tuned.metrics["unlabeled_images"] == IMAGES - 20
    assert "fixmatch" in tuned.metrics
    assert tune.metrics["version"] == tuned.number and tune.metrics["promoted"]
    # Its trunk is no longer the backbone: the pool went through it on Ray, and the queue's
    # predictions are its own.
    assert len([key for key in resnet_calls]) >= IMAGES
    assert_scored_as_on_pixels(project, tuned)
    assert not ImageScore.objects.filter(image__project=project).exclude(model_version=tuned)

    # One fine-tune per round: the fine-tune's own end queues none.
    assert run_maybe_fine_tune(project=project) is None
    assert TrainingRun.objects.filter(trigger=RunTrigger.FINE_TUNE).count() == 1


def test_a_queued_fine_tune_gives_way_to_a_round(
    digits_project, alice, as_user, tmp_path, ray_session, fine_tuning
):
    project, truth = digits_project
    import_backbone(project, alice, as_user, tmp_path)
    label_first(project, alice, truth, 20)
    fine_tuning.LABELLOOP_FINE_TUNE_STEPS = 0
    head = a_round(project)
    fine_tuning.LABELLOOP_FINE_TUNE_STEPS = STEPS
    queued = run_maybe_fine_tune(project=project)
    assert queued.trigger == RunTrigger.FINE_TUNE and queued.status == RunStatus.QUEUED

    # Labels arrive and a round is asked for: it takes the queued fine-tune's place.
    label_first(project, alice, truth, 30, start=20)
    run, created = run_request(project=project, trigger=RunTrigger.MANUAL)
    assert not created and run.pk == queued.pk and run.trigger == RunTrigger.MANUAL
    fine_tuning.LABELLOOP_FINE_TUNE_SEMI_SUPERVISED = False  # a deployment that turns it off
    run_all()
    # The round ran on 30 labels; its end queued a fine-tune of its own model, which ran.
    second = ModelVersion.objects.get(run=run)
    assert second.number == head.number + 1 and second.labels_used == 30
    tune = TrainingRun.objects.get(project=project, trigger=RunTrigger.FINE_TUNE)
    assert tune.params == {"base_version": second.pk} and tune.status == RunStatus.SUCCEEDED
    tuned = ModelVersion.objects.get(run=tune)  # from the labels alone
    assert not tuned.metrics["semi_supervised"] and tuned.metrics["unlabeled_images"] == 0


def test_a_fine_tune_with_nothing_left_to_start_from_ends_saying_why(
    digits_project, alice, as_user, tmp_path, ray_session, fine_tuning
):
    project, truth = digits_project
    label_first(project, alice, truth, 20)
    scratch = a_round(project)  # no backbone: a CNN from scratch, and no fine-tune after it
    assert not TrainingRun.objects.filter(trigger=RunTrigger.FINE_TUNE).exists()
    assert run_maybe_fine_tune(project=project) is None

    # Asked for anyway (a version that is not a head on the newest backbone): it skips.
    run, _ = run_request(
        project=project, trigger=RunTrigger.FINE_TUNE, params={"base_version": scratch.pk}
    )
    run_all()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert run.metrics == {"skipped": f"a newer backbone came after version {scratch.number}"}
    assert ModelVersion.objects.filter(project=project).count() == 1

    gone, _ = run_request(
        project=project, trigger=RunTrigger.FINE_TUNE, params={"base_version": 10**9}
    )
    run_all()
    gone.refresh_from_db()
    assert gone.status == RunStatus.SUCCEEDED
    assert gone.metrics == {"skipped": f"version {10**9} to start from is gone"}


@pytest.mark.parametrize("follow_up", [RunTrigger.FINE_TUNE, RunTrigger.LABEL_CHECK])
def test_labels_that_arrive_while_a_follow_up_runs_queue_the_next_round_behind_it(
    digits_project, alice, follow_up
):
    """A follow-up can run for minutes; the labels given meanwhile must not wait for the next
    label after it ends to be counted (before: a running follow-up swallowed the trigger)."""
    project, truth = digits_project
    project.retrain_every = 5
    project.save(update_fields=["retrain_every"])
    running = TrainingRun.objects.create(
        project=project, trigger=follow_up, status=RunStatus.RUNNING, labels_snapshot=0
    )
    label_first(project, alice, truth, 5)
    queued = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
    assert queued.trigger == RunTrigger.AUTOMATIC and queued.pk != running.pk
