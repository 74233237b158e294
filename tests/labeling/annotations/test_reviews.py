"""The review queue: a reviewer confirms a suspect label, relabels it, or sends the image back
for fresh votes; every decision is recorded and idempotent.

Run: ``LABELLOOP_DATA_DIR=var/test-reviews .venv/bin/python -m pytest
tests/labeling/annotations/test_reviews.py -q``
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.annotations.models import Annotation, AnnotationSource, LabelReview, ReviewState
from labeling.annotations.reviews import Suspect, review_decide, reviews_open
from labeling.annotations.services import annotation_resolve, annotation_submit
from labeling.core import events
from labeling.core.errors import Conflict, NotFound
from labeling.images.models import Image
from labeling.projects.models import Membership, Role
from labeling.projects.services import project_label_rename
from tests.factories import ImageFactory, UserFactory
from tests.labeling.annotations.helpers import next_tasks, submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def rita(project):
    """A reviewer of the project."""
    user = UserFactory(username="rita")
    Membership.objects.create(project=project, user=user, role=Role.REVIEWER)
    return user


def labeled(project, user, label: str, **fields) -> Image:
    image = ImageFactory(project=project, **fields)
    annotation_submit(
        image=Image.objects.select_related("project").get(pk=image.pk),
        user=user,
        label=label,
        client_id=uuid.uuid4(),
    )
    return Image.objects.get(pk=image.pk)


def flag(project, image: Image, score: float = 0.9, model_label: str = "5") -> LabelReview:
    """What a label check leaves behind: the image's label in the queue."""
    image.refresh_from_db()
    suspect = Suspect(image.pk, score, image.consensus_label, model_label, 0.8)
    reviews_open(project=project, run_id=None, suspects=[suspect])
    return LabelReview.objects.get(image=image, state=ReviewState.OPEN)


@pytest.fixture
def suspect(project, bob):
    """bob labeled an image 3; the model thinks it is a 5."""
    project.retrain_every = 0
    project.exploration_fraction = 0.0
    project.save()
    return flag(project, labeled(project, bob, "3"))


def decide(client, review, decision: str, label: str | None = None, decision_id=None):
    body = {"decision": decision, "decision_id": str(decision_id or uuid.uuid4())}
    if label is not None:
        body["label"] = label
    return client.post(f"/api/reviews/{review.pk}/decision/", body, format="json")


def error_of(response) -> tuple[int, str, str]:
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


# --- the queue ---


def test_a_reviewer_sees_the_open_queue_most_likely_wrong_first(project, bob, rita, as_user):
    low = flag(project, labeled(project, bob, "1"), score=0.4)
    high = flag(project, labeled(project, bob, "7"), score=0.95, model_label="1")
    response = as_user(rita).get(f"/api/projects/{project.id}/reviews/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}
    assert [r["id"] for r in body["results"]] == [high.pk, low.pk]
    first = body["results"][0]
    image = Image.objects.get(pk=high.image_id)
    assert first == {
        "id": high.pk,
        "project": project.pk,
        "image": {
            "id": image.pk,
            "file_url": f"/api/images/{image.pk}/file/",
            "original_name": image.original_name,
            "width": 28,
            "height": 28,
            "predicted_label": None,
            "confidence": None,
            "status": "labeled",
            "consensus_label": "7",
        },
        "state": "open",
        "score": 0.95,
        "given_label": "7",
        "model_label": "1",
        "model_confidence": 0.8,
        "votes": [
            {
                "annotator": "bob",
                "label": "7",
                "source": "manual",
                "created_at": first["votes"][0]["created_at"],
                "discarded": False,
            }
        ],
        "run": None,
        "found_at": first["found_at"],
        "decided_by": None,
        "decided_at": None,
        "label_after": None,
    }


def test_the_queue_is_cursor_paginated(project, bob, rita, as_user):
    for score in (0.9, 0.8, 0.7):
        flag(project, labeled(project, bob, "2"), score=score)
    client = as_user(rita)
    page = client.get(f"/api/projects/{project.id}/reviews/?page_size=2").json()
    assert [r["score"] for r in page["results"]] == [0.9, 0.8]
    rest = client.get(page["next"]).json()
    assert [r["score"] for r in rest["results"]] == [0.7]
    assert rest["next"] is None


def test_decided_reviews_leave_the_open_queue_and_state_all_lists_them(
    project, suspect, rita, as_user
):
    client = as_user(rita)
    assert decide(client, suspect, "confirm").status_code == 200
    url = f"/api/projects/{project.id}/reviews/"
    assert client.get(url).json()["results"] == []
    (done,) = client.get(url + "?state=confirmed").json()["results"]
    assert (done["id"], done["decided_by"]) == (suspect.pk, "rita")
    assert [r["id"] for r in client.get(url + "?state=all").json()["results"]] == [suspect.pk]


def test_an_unknown_state_is_a_400_naming_the_choices(project, rita, as_user):
    response = as_user(rita).get(f"/api/projects/{project.id}/reviews/?state=closed")
    status, code, message = error_of(response)
    assert (status, code) == (400, "invalid_parameter")
    assert "open, confirmed, relabeled, sent_back, stale, all" in message


def test_the_queue_costs_the_same_queries_for_one_review_or_many(project, bob, rita, as_user):
    """No N+1: the images, who decided, and every vote with its annotator come in a fixed
    number of queries per page."""
    carol = UserFactory(username="carol")
    Membership.objects.create(project=project, user=carol, role=Role.ANNOTATOR)
    client = as_user(rita)
    url = f"/api/projects/{project.id}/reviews/?state=all"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    flag(project, labeled(project, bob, "1"))
    one = queries()
    for i in range(6):
        review = flag(project, labeled(project, carol if i % 2 else bob, "4"))
        if i % 3 == 0:
            review_decide(
                review_id=review.pk, user=rita, decision="confirm", decision_id=uuid.uuid4()
            )
    assert queries() == one


def test_a_review_reads_by_id_with_its_votes(project, suspect, rita, as_user):
    response = as_user(rita).get(f"/api/reviews/{suspect.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["given_label"], body["model_label"]) == (suspect.pk, "3", "5")
    assert [(v["annotator"], v["label"]) for v in body["votes"]] == [("bob", "3")]


# --- confirm ---


def test_confirm_keeps_the_label_and_the_next_check_does_not_flag_it_again(
    project, suspect, rita, as_user
):
    response = decide(as_user(rita), suspect, "confirm")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["decided_by"], body["label_after"]) == ("confirmed", "rita", None)
    assert body["decided_at"] is not None
    image = Image.objects.get(pk=suspect.image_id)
    assert (image.status, image.consensus_label) == ("labeled", "3")
    again = Suspect(image.pk, 0.99, "3", "5", 0.9)
    assert reviews_open(project=project, run_id=7, suspects=[again]) == 0
    assert not LabelReview.objects.filter(state=ReviewState.OPEN).exists()


# --- relabel ---


def test_relabel_sets_the_reviewers_label_and_records_before_and_after(
    project, suspect, rita, as_user
):
    labeled_events = []

    def heard(sender, *, images, source, user, **_):
        labeled_events.append(([i.pk for i in images], source, user.username))

    events.images_labeled.connect(heard, dispatch_uid="test.reviews.heard")
    try:
        response = decide(as_user(rita), suspect, "relabel", label="5")
    finally:
        events.images_labeled.disconnect(dispatch_uid="test.reviews.heard")
    assert response.status_code == 200
    body = response.json()
    assert (body["state"], body["given_label"], body["label_after"]) == ("relabeled", "3", "5")
    assert body["decided_by"] == "rita"
    assert body["image"]["consensus_label"] == "5"
    assert [(v["annotator"], v["label"], v["source"]) for v in body["votes"]] == [
        ("bob", "3", "manual"),
        ("rita", "5", "review"),
    ]
    image = Image.objects.get(pk=suspect.image_id)
    assert (image.status, image.consensus_label) == ("labeled", "5")
    decision = Annotation.objects.get(source=AnnotationSource.REVIEW)
    assert str(decision.client_id) == str(LabelReview.objects.get().decision_id)
    # Announced like a resolution: the webhook outbox and retrain_every hear of it.
    assert labeled_events == [([image.pk], "review", "rita")]


def test_a_relabeled_label_is_not_flagged_again(project, suspect, rita, bob):
    review_decide(
        review_id=suspect.pk, user=rita, decision="relabel", label="5", decision_id=uuid.uuid4()
    )
    assert (
        reviews_open(
            project=project, run_id=None, suspects=[Suspect(suspect.image_id, 0.9, "5", "3", 0.7)]
        )
        == 0
    )


def test_relabel_accepts_a_class_by_the_name_it_had_before_a_rename(
    project, suspect, rita, as_user
):
    project_label_rename(project=project, old="5", new="five")
    response = decide(as_user(rita), suspect, "relabel", label="5")
    assert response.status_code == 200
    assert response.json()["label_after"] == "five"
    assert Image.objects.get(pk=suspect.image_id).consensus_label == "five"


def test_a_class_rename_renames_the_reviews_labels_too(project, suspect, rita, as_user):
    project_label_rename(project=project, old="3", new="three")
    suspect.refresh_from_db()
    assert (suspect.given_label, suspect.state) == ("three", "open")
    assert decide(as_user(rita), suspect, "confirm").json()["state"] == "confirmed"


@pytest.mark.parametrize(
    ("label", "code", "words"),
    [
        (None, "label", "relabel needs the new label"),
        ("3", "same_label", "'3' is already the image's label; to keep it, confirm"),
        ("eleven", "unknown_label", "label 'eleven' is not one of the project's classes"),
    ],
)
def test_a_relabel_without_a_new_class_is_a_400_that_says_why(
    project, suspect, rita, as_user, label, code, words
):
    status, got, message = error_of(decide(as_user(rita), suspect, "relabel", label=label))
    assert (status, got) == (400, code)
    assert words in message
    assert LabelReview.objects.get().state == "open"
    assert not Annotation.objects.filter(source=AnnotationSource.REVIEW).exists()


def test_a_label_with_confirm_is_refused_rather_than_ignored(project, suspect, rita, as_user):
    status, code, _ = error_of(decide(as_user(rita), suspect, "confirm", label="5"))
    assert (status, code) == (400, "label")


def test_an_unknown_decision_is_a_400(project, suspect, rita, as_user):
    assert decide(as_user(rita), suspect, "approve").status_code == 400


# --- send back ---


def test_send_back_discards_the_votes_and_puts_the_image_back_in_the_queue(
    project, suspect, rita, as_user
):
    response = decide(as_user(rita), suspect, "send_back")
    assert response.status_code == 200
    body = response.json()
    assert body["state"] == "sent_back"
    assert [(v["annotator"], v["discarded"]) for v in body["votes"]] == [("bob", True)]
    image = Image.objects.get(pk=suspect.image_id)
    assert (image.status, image.consensus_label, image.annotation_count) == ("unlabeled", None, 0)
    (vote,) = Annotation.objects.filter(image=image)
    assert vote.discarded_at is not None and vote.label == "3"  # kept on record
    # The image's history and the project's say which votes no longer count.
    detail = as_user(rita).get(f"/api/images/{image.pk}/").json()
    assert [a["discarded_at"] is not None for a in detail["annotations"]] == [True]
    history = as_user(rita).get(f"/api/projects/{project.pk}/annotations/").json()
    assert [a["discarded_at"] is not None for a in history["results"]] == [True]


def test_after_a_send_back_the_earlier_voter_gets_the_image_again_and_their_vote_counts(
    project, suspect, rita, bob, as_user
):
    assert next_tasks(as_user(bob), project) == []  # bob voted: nothing for him
    decide(as_user(rita), suspect, "send_back")
    (task,) = next_tasks(as_user(bob), project)
    assert task["image"] == suspect.image_id
    renewed = as_user(bob).post(f"/api/tasks/{task['image']}/renew/")
    assert renewed.status_code == 200
    # The same label as his discarded vote: a new vote, and it counts.
    response = submit(as_user(bob), task["image"], label="3")
    assert response.status_code == 201
    image = Image.objects.get(pk=suspect.image_id)
    assert (image.status, image.consensus_label, image.annotation_count) == ("labeled", "3", 1)
    assert Annotation.objects.filter(image=image, discarded_at=None).count() == 1


def test_after_a_send_back_with_overlap_every_earlier_voter_must_vote_again(
    project, bob, rita, as_user
):
    carol = UserFactory(username="carol")
    Membership.objects.create(project=project, user=carol, role=Role.ANNOTATOR)
    project.annotations_per_image = 2
    project.retrain_every = 0
    project.save()
    image = labeled(project, bob, "3")
    annotation_submit(
        image=Image.objects.select_related("project").get(pk=image.pk),
        user=carol,
        label="3",
        client_id=uuid.uuid4(),
    )
    review = flag(project, image)
    decide(as_user(rita), review, "send_back")
    assert submit(as_user(carol), image.pk, label="5").status_code == 201
    image.refresh_from_db()
    assert (image.status, image.annotation_count) == ("partial", 1)
    assert submit(as_user(bob), image.pk, label="5").status_code == 201
    image.refresh_from_db()
    assert (image.status, image.consensus_label, image.agreement) == ("labeled", "5", 1.0)


def test_send_back_also_discards_an_earlier_decision(project, suspect, alice, rita, as_user):
    annotation_resolve(
        image=Image.objects.select_related("project").get(pk=suspect.image_id),
        admin=alice,
        label="3",
    )
    decide(as_user(rita), suspect, "send_back")
    image = Image.objects.get(pk=suspect.image_id)
    assert (image.status, image.consensus_label) == ("unlabeled", None)
    assert not Annotation.objects.filter(image=image, discarded_at=None).exists()


# --- idempotency and conflicts ---


@pytest.mark.parametrize(
    ("decision", "label"), [("confirm", None), ("relabel", "5"), ("send_back", None)]
)
def test_a_replayed_decision_changes_nothing(project, suspect, rita, as_user, decision, label):
    client, key = as_user(rita), uuid.uuid4()
    first = decide(client, suspect, decision, label=label, decision_id=key)
    assert first.status_code == 200
    before = list(Annotation.objects.order_by("id").values())
    image_before = Image.objects.filter(pk=suspect.image_id).values().get()
    replay = decide(client, suspect, decision, label=label, decision_id=key)
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert list(Annotation.objects.order_by("id").values()) == before
    assert Image.objects.filter(pk=suspect.image_id).values().get() == image_before


def test_a_second_decision_on_a_decided_review_is_a_409_naming_who_and_when(
    project, suspect, rita, alice, as_user
):
    decide(as_user(rita), suspect, "confirm")
    status, code, message = error_of(decide(as_user(alice), suspect, "relabel", label="5"))
    assert (status, code) == (409, "already_decided")
    assert "already decided (confirmed) by rita at 20" in message
    assert Image.objects.get(pk=suspect.image_id).consensus_label == "3"


def test_a_decision_id_used_for_another_review_is_a_409(project, suspect, bob, rita, as_user):
    other = flag(project, labeled(project, bob, "8"))
    key = uuid.uuid4()
    assert decide(as_user(rita), suspect, "confirm", decision_id=key).status_code == 200
    status, code, _ = error_of(decide(as_user(rita), other, "confirm", decision_id=key))
    assert (status, code) == (409, "decision_id_reused")
    assert LabelReview.objects.get(pk=other.pk).state == "open"


def test_a_decision_on_a_label_that_changed_since_is_a_409_stale(
    project, suspect, alice, rita, as_user
):
    annotation_resolve(
        image=Image.objects.select_related("project").get(pk=suspect.image_id),
        admin=alice,
        label="5",
    )
    status, code, message = error_of(decide(as_user(rita), suspect, "relabel", label="6"))
    assert (status, code) == (409, "stale")
    assert "label changed since this review was found" in message
    assert LabelReview.objects.get().state == "stale"  # closed, not left open
    assert Image.objects.get(pk=suspect.image_id).consensus_label == "5"
    assert error_of(decide(as_user(rita), suspect, "confirm"))[:2] == (409, "stale")


def test_a_label_check_never_puts_a_gold_question_in_the_queue(project, bob):
    image = labeled(project, bob, "3")
    Image.objects.filter(pk=image.pk).update(gold_label="3")
    suspect = Suspect(image.pk, 0.99, "3", "5", 0.9)
    assert reviews_open(project=project, run_id=None, suspects=[suspect]) == 0
    assert not LabelReview.objects.exists()


def test_a_gold_question_is_not_relabeled_by_review(project, bob, rita, as_user):
    image = labeled(project, bob, "3")
    review = flag(project, image)  # found before an admin made it a gold question
    Image.objects.filter(pk=image.pk).update(gold_label="3")
    status, code, _ = error_of(decide(as_user(rita), review, "send_back"))
    assert (status, code) == (409, "gold")
    assert decide(as_user(rita), review, "confirm").status_code == 200


def test_a_missing_review_is_a_404(rita):
    with pytest.raises(NotFound):
        review_decide(review_id=987654, user=rita, decision="confirm", decision_id=uuid.uuid4())


def test_the_service_refuses_a_second_decision_with_conflict(project, suspect, rita, alice):
    review_decide(review_id=suspect.pk, user=rita, decision="confirm", decision_id=uuid.uuid4())
    with pytest.raises(Conflict) as raised:
        review_decide(
            review_id=suspect.pk, user=alice, decision="send_back", decision_id=uuid.uuid4()
        )
    assert raised.value.code == "already_decided"
