"""Two reviewers deciding the same review at the same moment, each on a PostgreSQL connection
of their own: exactly one decision lands, the other is told who won; a decision replayed on two
connections at once lands once.

Run: ``LABELLOOP_DATA_DIR=var/test-reviews .venv/bin/python -m pytest
tests/labeling/annotations/test_reviews_concurrency.py -q``
"""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connections

from labeling.annotations.models import Annotation, AnnotationSource, LabelReview, ReviewState
from labeling.annotations.reviews import Suspect, review_decide, reviews_open
from labeling.annotations.services import annotation_submit
from labeling.core.errors import Conflict
from labeling.images.models import Image, ImageStatus
from labeling.projects.models import Membership, Project, Role
from tests.factories import ImageFactory, UserFactory

ROUNDS = 8  # reviews raced for; each race is two threads released by one barrier


def race(calls: list) -> list:
    """Run ``calls`` at once, one thread (and so one connection) each; their outcomes."""
    barrier = threading.Barrier(len(calls))
    outcomes: list = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[i] = calls[i]()
        except BaseException as exc:  # the outcome under test (a Conflict), or a failure
            outcomes[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    return outcomes


@pytest.fixture
def queue(db):
    project = Project.objects.create(
        name="Raced", slug="raced", labels=[str(i) for i in range(10)], retrain_every=0
    )
    bob, rita, alice = (UserFactory(username=n) for n in ("bob", "rita", "alice"))
    Membership.objects.create(project=project, user=bob, role=Role.ANNOTATOR)
    Membership.objects.create(project=project, user=rita, role=Role.REVIEWER)
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    suspects = []
    for _ in range(ROUNDS):
        image = ImageFactory(project=project)
        image = Image.objects.select_related("project").get(pk=image.pk)
        annotation_submit(image=image, user=bob, label="3", client_id=uuid.uuid4())
        suspects.append(Suspect(image.pk, 0.9, "3", "5", 0.8))
    reviews_open(project=project, run_id=None, suspects=suspects)
    return project, rita, alice, list(LabelReview.objects.order_by("id"))


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_at_once_exactly_one_decision_lands(queue):
    _project, rita, alice, reviews = queue
    for n, review in enumerate(reviews):
        # Alternate who relabels and who sends back, so neither always starts first.
        relabeler, sender = (rita, alice) if n % 2 else (alice, rita)
        relabel, send_back = uuid.uuid4(), uuid.uuid4()
        outcomes = race(
            [
                lambda r=review, u=relabeler, k=relabel: review_decide(
                    review_id=r.pk, user=u, decision="relabel", label="5", decision_id=k
                ),
                lambda r=review, u=sender, k=send_back: review_decide(
                    review_id=r.pk, user=u, decision="send_back", decision_id=k
                ),
            ]
        )
        won = [o for o in outcomes if isinstance(o, LabelReview)]
        lost = [o for o in outcomes if isinstance(o, Conflict)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        assert lost[0].code == "already_decided"
        assert won[0].decided_by.username in lost[0].message
        review.refresh_from_db()
        image = Image.objects.get(pk=review.image_id)
        history = Annotation.objects.filter(image=image)
        if review.state == ReviewState.RELABELED:
            # The relabel alone: no vote was discarded, one decision recorded.
            assert review.decision_id == relabel
            assert (image.status, image.consensus_label) == (ImageStatus.LABELED, "5")
            assert not history.exclude(discarded_at=None).exists()
            assert history.filter(source=AnnotationSource.REVIEW).count() == 1
        else:
            # The send-back alone: no decision label was recorded, the vote is discarded.
            assert (review.state, review.decision_id) == (ReviewState.SENT_BACK, send_back)
            assert (image.status, image.consensus_label) == (ImageStatus.UNLABELED, None)
            assert not history.filter(source=AnnotationSource.REVIEW).exists()
            assert not history.filter(discarded_at=None).exists()
    states = set(LabelReview.objects.values_list("state", flat=True))
    assert states <= {ReviewState.RELABELED, ReviewState.SENT_BACK}


@pytest.mark.django_db(transaction=True)
def test_one_decision_sent_twice_at_once_lands_once(queue):
    _project, rita, _alice, reviews = queue
    for review in reviews[:4]:
        key = uuid.uuid4()
        outcomes = race(
            [
                lambda r=review, k=key: review_decide(
                    review_id=r.pk, user=rita, decision="relabel", label="5", decision_id=k
                )
            ]
            * 2
        )
        assert all(isinstance(o, LabelReview) for o in outcomes), outcomes
        assert outcomes[0].pk == outcomes[1].pk == review.pk
        assert Annotation.objects.filter(image_id=review.image_id, source="review").count() == 1
