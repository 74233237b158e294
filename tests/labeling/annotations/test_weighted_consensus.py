"""Weighted consensus (Dawid-Skene): the fit itself, and what it does to a project's labels."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.utils import timezone

from labeling.annotations.consensus import consensus_refit, reliability_model
from labeling.annotations.models import Annotation, ConsensusModel, GoldAnswer
from labeling.annotations.quality import annotator_quality
from labeling.annotations.weighted import MIN_IMAGES, Votes, dawid_skene
from labeling.images.models import ImageStatus
from labeling.projects.models import ConsensusMethod, Membership, Role
from labeling.projects.services import project_update
from tests.factories import ImageFactory, ProjectFactory, UserFactory


def crowd(n: int, k: int, error_rates: list[float], seed: int):
    """Every annotator labels every item; annotator a flips to a uniformly drawn wrong class
    with probability error_rates[a]."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    items, annotators, labels = [], [], []
    for a, rate in enumerate(error_rates):
        wrong = rng.random(n) < rate
        given = np.where(wrong, (truth + rng.integers(1, k, n)) % k, truth)
        items.append(np.arange(n))
        annotators.append(np.full(n, a))
        labels.append(given)
    votes = Votes(
        np.concatenate(items),
        np.concatenate(annotators),
        np.concatenate(labels),
        n,
        len(error_rates),
    )
    return truth, votes


def majority(votes: Votes, k: int, seed: int) -> np.ndarray:
    """Majority vote, ties broken at random (what a bare vote count can do at best)."""
    counts = np.zeros((votes.n_items, k))
    np.add.at(counts, (votes.items, votes.labels), 1)
    noise = np.random.default_rng(seed).random(counts.shape) * 1e-3
    return (counts + noise).argmax(axis=1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dawid_skene_gets_more_items_right_than_the_majority_with_unequal_annotators(seed):
    truth, votes = crowd(600, 10, [0.05, 0.35, 0.45], seed)
    fit = dawid_skene(votes, 10)
    weighted = (fit.posterior.argmax(axis=1) != truth).mean()
    bare = (majority(votes, 10, seed) != truth).mean()
    assert weighted < 0.6 * bare, (weighted, bare)  # measured: 4.6% against 13.3% wrong
    # It learned who is careful: the annotators' accuracies come out in the right order.
    accuracy = np.einsum("akk->ak", fit.confusion).mean(axis=1)
    assert list(np.argsort(-accuracy)) == [0, 1, 2]


def test_a_confusion_matrix_catches_an_annotator_who_mixes_up_two_classes():
    """The fourth annotator always calls a 5 a 3 (and is otherwise right): the model learns
    that pair, so their 3 counts as evidence of a 5."""
    truth, votes = crowd(600, 10, [0.02, 0.10, 0.30], seed=5)
    mixer = np.where(truth == 5, 3, truth)
    votes = Votes(
        np.concatenate([votes.items, np.arange(600)]),
        np.concatenate([votes.annotators, np.full(600, 3)]),
        np.concatenate([votes.labels, mixer]),
        600,
        4,
    )
    fit = dawid_skene(votes, 10)
    assert fit.confusion[3, 5, 3] > 10 * fit.confusion[3, 5, 4]  # true 5: says 3, not 4
    assert fit.confusion[3, 3, 3] > 0.9
    assert (fit.posterior.argmax(axis=1) != truth).mean() < (majority(votes, 10, 5) != truth).mean()


def test_the_one_coin_model_serves_many_classes():
    truth, votes = crowd(400, 40, [0.05, 0.3, 0.5], seed=3)
    fit = dawid_skene(votes, 40)
    assert fit.confusion.shape == (3,)  # one accuracy per annotator, not 40x40 cells
    assert fit.confusion[0] > fit.confusion[1] > fit.confusion[2]
    assert (fit.posterior.argmax(axis=1) == truth).mean() > 0.95


def test_known_truth_pins_the_fit():
    truth, votes = crowd(100, 4, [0.1, 0.1, 0.1], seed=4)
    fit = dawid_skene(votes, 4, known={0: (int(truth[0]) + 1) % 4})
    assert fit.posterior[0].argmax() == (truth[0] + 1) % 4
    assert fit.posterior[0].max() == 1.0


# --- through the product ---------------------------------------------------------------------


CLASSES = ["cat", "dog", "fox", "owl"]


def make_crowd(project, method: str):
    """Three annotators label 60 images each (overlap 3): 'careful' is always right, 'hasty'
    and 'sloppy' are wrong on 30% and 40% of them, each in their own way. The same votes for
    the same seed, whatever the project."""
    project.labels = CLASSES
    project.annotations_per_image = 3
    project.consensus_method = method
    project.save()
    rng = np.random.default_rng(7)
    users = []
    for name in ["careful", "hasty", "sloppy"]:
        user = UserFactory(username=name)
        Membership.objects.get_or_create(project=project, user=user, role=Role.ANNOTATOR)
        users.append(user)
    truth = {}
    for _ in range(60):
        image = ImageFactory(project=project)
        right = int(rng.integers(0, 4))
        truth[image.pk] = CLASSES[right]
        for user, rate in zip(users, [0.0, 0.3, 0.4], strict=True):
            given = right if rng.random() >= rate else (right + int(rng.integers(1, 4))) % 4
            Annotation.objects.create(
                image=image, annotator=user, label=CLASSES[given], client_id=uuid.uuid4()
            )
    consensus_refit(project=project)  # judge them all once
    return project, truth, users


@pytest.fixture
def crowd_project(project):
    return make_crowd(project, ConsensusMethod.MAJORITY)


def labels_right_and_wrong(project, truth) -> tuple[int, int]:
    rows = project.images.filter(status=ImageStatus.LABELED).values_list("pk", "consensus_label")
    right = sum(truth[pk] == label for pk, label in rows)
    return right, len(rows) - right


def another_vote_where_asked(project, truth) -> int:
    """A fourth annotator, always right, answers every image that asks for another vote."""
    fresh = UserFactory(username=f"fresh-{project.pk}")
    waiting = list(project.images.filter(status=ImageStatus.PARTIAL))
    for image in waiting:
        Annotation.objects.create(
            image=image, annotator=fresh, label=truth[image.pk], client_id=uuid.uuid4()
        )
    consensus_refit(project=project)
    return len(waiting)


def test_weighted_consensus_gets_more_images_right_than_the_majority(project, alice):
    """The same crowd in two projects. The majority labels an image two careless annotators
    agree on, right or wrong; the weighted consensus sides with the careful one, and where
    it is unsure it asks for one more vote rather than guess."""
    majority, truth_m, _ = make_crowd(project, ConsensusMethod.MAJORITY)
    weighted, truth_w, _ = make_crowd(ProjectFactory(), ConsensusMethod.WEIGHTED)
    assert ConsensusModel.objects.filter(project=weighted).exists()
    assert not ConsensusModel.objects.filter(project=majority).exists()
    _, wrong_m = labels_right_and_wrong(majority, truth_m)
    _, wrong_w = labels_right_and_wrong(weighted, truth_w)
    assert wrong_w < wrong_m  # fewer wrong labels reach the model

    asked_m = another_vote_where_asked(majority, truth_m)
    asked_w = another_vote_where_asked(weighted, truth_w)
    right_m, wrong_m = labels_right_and_wrong(majority, truth_m)
    right_w, wrong_w = labels_right_and_wrong(weighted, truth_w)
    assert right_w > right_m, (right_w, right_m, asked_w, asked_m)
    assert wrong_w < wrong_m


def test_a_change_of_method_judges_every_multi_vote_image_again(crowd_project):
    project, truth, users = crowd_project
    before = labels_right_and_wrong(project, truth)
    project_update(project=project, consensus_method=ConsensusMethod.WEIGHTED)
    project.refresh_from_db()
    assert ConsensusModel.objects.filter(project=project).exists()
    assert labels_right_and_wrong(project, truth)[1] < before[1]
    model = reliability_model(project)
    careful, hasty, sloppy = (model.reliability(u.pk) for u in users)
    assert careful > hasty > sloppy

    # And back: the majority judges again, the model is dropped.
    project_update(project=project, consensus_method=ConsensusMethod.MAJORITY)
    project.refresh_from_db()
    assert labels_right_and_wrong(project, truth) == before
    assert not ConsensusModel.objects.filter(project=project).exists()


def test_weighted_consensus_keeps_the_majority_until_there_is_enough_to_fit(project):
    project.labels = CLASSES
    project.annotations_per_image = 2
    project.save()
    users = [UserFactory(username=f"u{i}") for i in range(2)]
    image = ImageFactory(project=project)
    for user, label in zip(users, ["cat", "dog"], strict=True):
        Annotation.objects.create(image=image, annotator=user, label=label, client_id=uuid.uuid4())
    report = consensus_refit(project=project)
    assert report["images"] == 1 < MIN_IMAGES and report["weighted"] is False
    image.refresh_from_db()
    assert image.status == ImageStatus.PARTIAL  # a tie asks for another vote, as before


def test_gold_answers_teach_the_model_who_to_trust(crowd_project):
    """Gold questions pin the truth: an annotator who fails them weighs less."""
    project, _, (careful, hasty, sloppy) = crowd_project
    project.consensus_method = ConsensusMethod.WEIGHTED
    project.save()
    consensus_refit(project=project)
    before = reliability_model(project).reliability(hasty.pk)
    for _ in range(15):
        gold = ImageFactory(project=project, gold_label="owl", status=ImageStatus.LABELED)
        for user, label in [(careful, "owl"), (hasty, "cat"), (sloppy, "owl")]:
            GoldAnswer.objects.create(
                image=gold,
                annotator=user,
                label=label,
                expected="owl",
                correct=label == "owl",
                client_id=uuid.uuid4(),
            )
    consensus_refit(project=project)
    assert reliability_model(project).reliability(hasty.pk) < before - 0.05


def test_a_discarded_vote_does_not_count(project, alice):
    project.labels = CLASSES
    project.annotations_per_image = 2
    project.save()
    users = [UserFactory(username=f"v{i}") for i in range(3)]
    image = ImageFactory(project=project)
    for user, label in zip(users[:2], ["cat", "dog"], strict=True):
        Annotation.objects.create(
            image=image,
            annotator=user,
            label=label,
            client_id=uuid.uuid4(),
            discarded_at=timezone.now(),
        )
    for user in users[1:]:
        Annotation.objects.create(image=image, annotator=user, label="fox", client_id=uuid.uuid4())
    consensus_refit(project=project)
    image.refresh_from_db()
    assert (image.status, image.consensus_label, image.annotation_count) == (
        ImageStatus.LABELED,
        "fox",
        2,
    )


def test_annotator_quality_reports_the_fitted_reliability(crowd_project):
    project = crowd_project[0]

    assert {r["reliability"] for r in annotator_quality(project=project)["results"]} == {None}
    project_update(project=project, consensus_method=ConsensusMethod.WEIGHTED)
    project.refresh_from_db()
    by_name = {
        r["username"]: r["reliability"] for r in annotator_quality(project=project)["results"]
    }
    assert by_name["careful"] > by_name["hasty"] > by_name["sloppy"]
