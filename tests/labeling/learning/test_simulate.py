"""`manage.py simulate`: the real loop with an oracle, on a small slice of MNIST-5k."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from labeling.learning.management.commands.simulate import _claim
from labeling.learning.models import RunStatus, TrainingRun
from labeling.projects.models import Project
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_simulate_writes_curves_for_each_strategy_and_cleans_up(ray_session, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "simulate",
        "--strategy=margin",
        "--compare",
        "random",
        "--batch=25",
        "--budget=50",
        "--seeds=1",
        "--first-seed=4",
        "--pool-size=300",
        f"--out={tmp_path}",
        "--name=tiny",
        stdout=out,
        stderr=err,
    )
    with (tmp_path / "tiny.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    # An empty project, then two rounds of 25 tasks from the queue: two points per strategy.
    assert [(r["strategy"], r["seed"], r["labels"]) for r in rows] == [
        ("margin", "4", "25"),
        ("margin", "4", "50"),
        ("random", "4", "25"),
        ("random", "4", "50"),
    ]
    accuracies = [float(r["test_accuracy"]) for r in rows]
    assert all(0.3 < a <= 1.0 for a in accuracies), accuracies  # far above chance (0.1)
    assert (tmp_path / "tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "margin  mean labels to 90%" in out.getvalue()
    assert "round:" in err.getvalue()
    # Every round was a real training run through the worker; the projects are gone after.
    assert not Project.objects.filter(slug__startswith="sim-").exists()
    assert not TrainingRun.objects.exists()


def test_simulate_can_start_from_a_class_balanced_handful_of_labels(ray_session, tmp_path):
    call_command(
        "simulate",
        "--strategy=diverse",
        "--initial-per-class=2",
        "--batch=25",
        "--budget=45",
        "--seeds=1",
        "--pool-size=300",
        f"--out={tmp_path}",
        "--name=balanced",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )
    with (tmp_path / "balanced.csv").open() as handle:
        labels = [r["labels"] for r in csv.DictReader(handle)]
    assert labels == ["20", "45"]  # 2 per class, then one round of 25


def test_simulate_runs_a_crowd_with_overlap_and_a_reviewer(ray_session, tmp_path):
    """Noisy annotators through the real queue: three votes an image under weighted consensus;
    one vote an image with a reviewer who knows the truth deciding the label check's queue."""
    out = io.StringIO()
    call_command(
        "simulate",
        "--strategy=random",
        "--variants",
        "weighted3",
        "noisy+review",
        "--crowd=0.0,0.3,0.3,pair:5>3",
        "--batch=30",
        "--budget=60",
        "--seeds=1",
        "--pool-size=300",
        f"--out={tmp_path}",
        "--name=crowd",
        stdout=out,
        stderr=io.StringIO(),
    )
    with (tmp_path / "crowd-labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    by_variant = {}
    for row in rows:
        by_variant.setdefault(row["variant"], []).append(row)
    assert set(by_variant) == {"random weighted3", "random noisy+review"}
    overlap = by_variant["random weighted3"][-1]
    assert int(overlap["labels"]) >= 60
    assert int(overlap["votes"]) >= 3 * int(overlap["labels"])  # every label took three votes
    single = by_variant["random noisy+review"][-1]
    assert int(single["votes"]) < 2 * int(single["labels"])
    assert int(single["reviews"]) >= 1  # the label check found something, the reviewer decided
    for row in rows:
        assert 0.0 <= float(row["label_accuracy"]) <= 1.0
    assert "random weighted3" in out.getvalue() and "labels right" in out.getvalue()
    assert not Project.objects.filter(slug__startswith="sim-").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategy=smart"], "unknown strategy 'smart'"),
        (["--compare", "nope"], "unknown strategy 'nope'"),
        (["--budget=20"], "--budget more than one batch"),
        (["--initial-per-class=-1"], "--initial-per-class must be between 0 and 50"),
        (["--batch=0"], "--batch must be >= 1"),
        (["--pool-size=50"], "--pool-size must be at least 100"),
        (["--dataset=cifar10k", "--zip=/nonexistent.zip"], "/nonexistent.zip is missing"),
        (["--backbone=/nonexistent.pth", "--budget=50"], "no such file"),
        (["--dirty=1.5"], "--dirty must be a share"),
        (["--variants", "loud"], "unknown variant 'loud'"),
        (["--variants", "noisy", "--crowd=abc"], "an error rate or pair:A>B"),
        (["--variants", "noisy", "--crowd=pair:5>5"], "two different classes"),
        (["--variants", "noisy", "--crowd=1.5"], "an error rate is in"),
    ],
)
def test_simulate_refuses_bad_arguments_before_doing_any_work(args, message, tmp_path):
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("simulate", *args, f"--out={tmp_path}")
    assert not Project.objects.exists()


def test_simulate_claims_its_own_run_not_the_oldest_in_the_lane():
    """Two simulations on one database: the one whose run is newer still takes that run, and
    leaves the other simulation's older run queued for it."""
    other = TrainingRun.objects.create(project=ProjectFactory(), trigger="manual")
    mine = TrainingRun.objects.create(project=ProjectFactory(), trigger="manual")
    assert _claim(mine, "sim:2") == mine
    other.refresh_from_db()
    mine.refresh_from_db()
    assert (other.status, mine.status, mine.worker) == (
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        "sim:2",
    )
    # Taken by someone else meanwhile: a clear refusal, not another run.
    TrainingRun.objects.filter(pk=other.pk).update(status=RunStatus.RUNNING, worker="host:9")
    with pytest.raises(CommandError, match="another worker took the simulation's run"):
        _claim(other, "sim:2")
