"""Annotator quality (``GET /api/projects/{id}/annotators/``) against a hand count, and the
``annotator_quality_low`` alert: once per crossing of the project's threshold."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labeling.annotations.gold import GOLD_ALERT_MIN_ANSWERS
from labeling.annotations.models import Annotation, AnnotationSource, LabelReview, ReviewState
from labeling.annotations.services import annotation_submit
from labeling.core import events
from labeling.projects.models import Membership, Role
from tests.factories import ImageFactory, UserFactory

pytestmark = pytest.mark.django_db


def vote(image, user, label, duration_ms=None):
    annotation_submit(
        image=image, user=user, label=label, client_id=uuid.uuid4(), duration_ms=duration_ms
    )


def gold_image(project, label):
    return ImageFactory(project=project, gold_label=label, status="labeled", consensus_label=label)


def quality(client, project):
    response = client.get(f"/api/projects/{project.pk}/annotators/")
    assert response.status_code == 200, response.content
    return response.json()


def test_per_annotator_figures_match_a_hand_count(alice, bob, carol, as_user, project):
    project.annotations_per_image = 2
    project.gold_rate = 0.0
    project.save()
    # Gold: bob 3 of 4 right, carol 1 of 2.
    golds = [gold_image(project, str(d)) for d in (1, 2, 3, 4)]
    for image, label in zip(golds, ["1", "2", "3", "9"], strict=True):
        vote(image, bob, label)
    for image, label in zip(golds[:2], ["1", "7"], strict=True):
        vote(image, carol, label)
    # Votes: three images with both bob and carol; carol agrees with the label on all three
    # (alice resolves the tie on the third), bob on one.
    agreed, split, tied = (ImageFactory(project=project) for _ in range(3))
    vote(agreed, bob, "5", duration_ms=2000)
    vote(agreed, carol, "5", duration_ms=1000)
    vote(split, bob, "6", duration_ms=4000)
    vote(split, carol, "8", duration_ms=3000)
    vote(split, alice, "8")  # a third vote breaks the tie: 8
    vote(tied, bob, "0", duration_ms=6000)
    vote(tied, carol, "1", duration_ms=5000)
    from labeling.annotations.services import annotation_resolve

    annotation_resolve(image=tied, admin=alice, label="1")  # a decision, not a vote
    # One image bob labeled alone, later relabeled by a reviewer away from his label.
    alone = ImageFactory(project=project)
    vote(alone, bob, "2", duration_ms=8000)
    LabelReview.objects.create(
        project=project,
        image=alone,
        state=ReviewState.RELABELED,
        score=0.9,
        given_label="2",
        model_label="3",
        model_confidence=0.8,
        decided_by=alice,
        decided_at=timezone.now(),
        label_after="3",
    )
    # A vote that a send-back discarded does not count, nor does an imported label.
    discarded = ImageFactory(project=project)
    vote(discarded, carol, "4", duration_ms=7000)
    Annotation.objects.filter(image=discarded).update(discarded_at=timezone.now())

    body = quality(as_user(alice), project)
    assert body["consensus_method"] == "weighted"
    rows = {row["username"]: row for row in body["results"]}
    assert sorted(rows) == ["alice", "bob", "carol"]  # members who label, by name
    bob_row, carol_row = rows["bob"], rows["carol"]
    assert (bob_row["gold_answered"], bob_row["gold_correct"]) == (4, 3)
    assert bob_row["gold_accuracy"] == 0.75
    assert bob_row["gold_accuracy_low"] < 0.75 < bob_row["gold_accuracy_high"]
    assert (carol_row["gold_answered"], carol_row["gold_correct"], carol_row["gold_accuracy"]) == (
        2,
        1,
        0.5,
    )
    assert (bob_row["labels"], carol_row["labels"]) == (4, 3)  # counted votes
    # Agreement on labeled images with 2+ votes: agreed (5), split (8), tied (resolved 1).
    assert (bob_row["agreement_n"], bob_row["agreement"]) == (3, pytest.approx(1 / 3, abs=1e-4))
    assert (carol_row["agreement_n"], carol_row["agreement"]) == (3, 1.0)
    assert (bob_row["judged_wrong"], bob_row["judged_wrong_share"]) == (1, 0.25)
    assert (carol_row["judged_wrong"], carol_row["judged_wrong_share"]) == (0, 0.0)
    assert bob_row["median_seconds"] == 5.0  # of 2, 4, 6, 8 s
    assert carol_row["median_seconds"] == 4.0  # of 1, 3, 5, 7 s
    assert rows["alice"]["gold_accuracy"] is None and rows["alice"]["gold_accuracy_low"] is None
    assert rows["alice"]["agreement_n"] == 1 and rows["alice"]["median_seconds"] is None
    assert all(row["reliability"] is None for row in body["results"])
    assert set(bob_row) == {
        "username",
        "role",
        "labels",
        "gold_answered",
        "gold_correct",
        "gold_accuracy",
        "gold_accuracy_low",
        "gold_accuracy_high",
        "agreement",
        "agreement_n",
        "judged_wrong",
        "judged_wrong_share",
        "median_seconds",
        "reliability",
    }


def test_quality_is_two_queries_however_many_annotators(alice, as_user, project):
    """One for the annotators' figures, one for the weighted consensus's model of them."""
    from labeling.annotations.quality import annotator_quality

    for n in range(12):
        user = UserFactory(username=f"annotator{n}")
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
        vote(ImageFactory(project=project), user, "1", duration_ms=1000)
        vote(gold_image(project, "2"), user, "2")
    with CaptureQueriesContext(connection) as queries:
        body = annotator_quality(project=project)
    assert len(queries) == 2
    assert len(body["results"]) == 14  # the twelve, bob (no labels yet) and alice


def test_a_reviewer_reads_annotator_quality_and_an_annotator_cannot(
    alice, bob, victor, mallory, as_user, project
):
    reviewer = UserFactory(username="rita")
    Membership.objects.create(project=project, user=reviewer, role=Role.REVIEWER)
    assert as_user(reviewer).get(f"/api/projects/{project.pk}/annotators/").status_code == 200
    for user, status in [(bob, 403), (victor, 403), (mallory, 404), (None, 401)]:
        response = as_user(user).get(f"/api/projects/{project.pk}/annotators/")
        assert response.status_code == status


# --- the alert ------------------------------------------------------------------------


@pytest.fixture
def alerts():
    heard = []

    def hear(sender, *, project, user, answered, correct, accuracy, threshold, **_):
        heard.append((user.username, answered, correct, accuracy, threshold))

    events.annotator_quality_low.connect(hear, dispatch_uid="test_quality.hear")
    yield heard
    events.annotator_quality_low.disconnect(dispatch_uid="test_quality.hear")


def answer_gold(project, user, answers: str) -> None:
    """One gold answer per character: r = right, w = wrong."""
    for mark in answers:
        image = gold_image(project, "1")
        vote(image, user, "1" if mark == "r" else "2")


def test_the_alert_fires_once_when_gold_accuracy_crosses_below_the_threshold(bob, project, alerts):
    assert GOLD_ALERT_MIN_ANSWERS == 10
    project.gold_alert_accuracy = 0.7
    project.save()
    answer_gold(project, bob, "rrrrrrr")  # 7 of 7
    answer_gold(project, bob, "ww")  # 7 of 9: too few answers to judge
    assert alerts == []
    answer_gold(project, bob, "r")  # 8 of 10 = 0.8: at or above
    assert alerts == []
    answer_gold(project, bob, "ww")  # 8 of 11 = 0.727, then 8 of 12 = 0.667: crossed
    assert alerts == [("bob", 12, 8, pytest.approx(8 / 12), 0.7)]
    answer_gold(project, bob, "www")  # still below: no second alert
    assert len(alerts) == 1


def test_a_tenth_answer_that_finds_the_annotator_below_the_threshold_alerts(bob, project, alerts):
    project.gold_alert_accuracy = 0.7
    project.save()
    answer_gold(project, bob, "rrrrrrwww")  # 6 of 9: not judged yet
    assert alerts == []
    answer_gold(project, bob, "w")  # 6 of 10
    assert [a[1:3] for a in alerts] == [(10, 6)]


def test_the_alert_fires_again_after_the_annotator_recovered_and_fell_again(bob, project, alerts):
    project.gold_alert_accuracy = 0.5
    project.save()
    answer_gold(project, bob, "rrrrwwwwww")  # 4 of 10: below
    answer_gold(project, bob, "rr")  # 6 of 12: at it again
    answer_gold(project, bob, "w")  # 6 of 13: below again
    assert [a[1:3] for a in alerts] == [(10, 4), (13, 6)]


def test_no_alert_when_the_threshold_is_zero(bob, project, alerts):
    project.gold_alert_accuracy = 0.0
    project.save()
    answer_gold(project, bob, "w" * 12)
    assert alerts == []


def test_answers_in_another_project_do_not_count(bob, project, alerts):
    from tests.factories import ProjectFactory

    other = ProjectFactory()
    Membership.objects.create(project=other, user=bob, role=Role.ANNOTATOR)
    project.gold_alert_accuracy = other.gold_alert_accuracy = 0.7
    project.save()
    other.save()
    answer_gold(other, bob, "w" * 9)
    answer_gold(project, bob, "w")
    assert alerts == []


def test_imported_labels_are_no_annotator_votes(alice, as_user, project):
    image = ImageFactory(project=project, status="labeled", consensus_label="1")
    Annotation.objects.create(
        image=image,
        annotator=alice,
        label="1",
        client_id=uuid.uuid4(),
        source=AnnotationSource.IMPORT,
    )
    rows = {r["username"]: r for r in quality(as_user(alice), project)["results"]}
    assert rows["alice"]["labels"] == 0
