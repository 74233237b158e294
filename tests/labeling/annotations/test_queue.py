"""The labeling queue's rules: leases, exploration, submission, overlap, consensus, review."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.annotations.lease_log import SKIP_HOLD_SECONDS
from labeling.annotations.models import Annotation, AnnotationSource, LeaseLog
from labeling.images.models import Image, ImageStatus
from labeling.projects.models import Membership, Role
from tests.factories import ImageFactory, ProjectFactory, UserFactory
from tests.labeling.annotations.helpers import expire_leases, next_tasks, submit

pytestmark = pytest.mark.django_db


def test_next_tasks_come_best_first_with_everything_the_ui_needs(bob, as_user, project, images):
    tasks = next_tasks(as_user(bob), project, count=3)
    by_priority = sorted(images, key=lambda i: -i.priority)
    assert [t["image"] for t in tasks] == [i.id for i in by_priority[:3]]
    first = tasks[0]
    assert set(first) == {
        "image",
        "file_url",
        "lease_expires",
        "suggestion",
        "exploration",
        "name",
    }
    assert first["name"] == by_priority[0].original_name  # the annotator's context strip
    assert first["file_url"] == f"/api/images/{first['image']}/file/"
    assert first["suggestion"] is None and first["exploration"] is False


def test_two_annotators_never_get_the_same_image(bob, carol, as_user, project, images):
    mine = {t["image"] for t in next_tasks(as_user(bob), project, count=5)}
    theirs = {t["image"] for t in next_tasks(as_user(carol), project, count=5)}
    assert len(mine) == len(theirs) == 5
    assert not mine & theirs


def test_asking_again_returns_my_unexpired_leases_first(bob, as_user, project, images):
    first = [t["image"] for t in next_tasks(as_user(bob), project, count=3)]
    again = [t["image"] for t in next_tasks(as_user(bob), project, count=3)]
    assert again == first
    more = [t["image"] for t in next_tasks(as_user(bob), project, count=5)]
    assert more[:3] == first and len(set(more)) == 5


def test_an_expired_lease_is_simply_eligible_again(bob, carol, as_user, project, images):
    taken = [t["image"] for t in next_tasks(as_user(bob), project, count=10)]
    assert next_tasks(as_user(carol), project, count=1) == []
    expire_leases(taken[:2])
    got = [t["image"] for t in next_tasks(as_user(carol), project, count=5)]
    assert got == taken[:2]


def test_release_gives_the_image_back_at_once(bob, carol, as_user, project, images):
    (task,) = next_tasks(as_user(bob), project)
    assert as_user(bob).post(f"/api/tasks/{task['image']}/release/").status_code == 204
    (theirs,) = next_tasks(as_user(carol), project)
    assert theirs["image"] == task["image"]
    response = as_user(bob).post(f"/api/tasks/{task['image']}/release/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "no_lease"


def test_a_skip_sticks_the_skipped_image_is_not_served_again_to_whoever_skipped_it(
    bob, carol, as_user, project, images
):
    """Before: the best-ranked image came straight back after a skip, and the annotator's
    browser released it again (issue 28: 9 releases of one image over 30 labels)."""
    client = as_user(bob)
    (best,) = next_tasks(client, project)
    assert client.post(f"/api/tasks/{best['image']}/release/").status_code == 204
    again = [t["image"] for t in next_tasks(client, project, count=9)]
    assert best["image"] not in again and len(again) == 9
    log = LeaseLog.objects.get(image_id=best["image"], user=bob)
    assert log.skipped and log.ended_at is not None
    # Everyone else gets it at once, and it is best for them.
    assert next_tasks(as_user(carol), project)[0]["image"] == best["image"]


def test_a_skip_holds_for_eight_hours_then_the_image_comes_back(bob, as_user, project, images):
    client = as_user(bob)
    (best,) = next_tasks(client, project)
    client.post(f"/api/tasks/{best['image']}/release/")
    assert next_tasks(client, project)[0]["image"] != best["image"]
    expire_leases([i.id for i in images])
    LeaseLog.objects.filter(user=bob, skipped=True).update(
        ended_at=timezone.now() - timedelta(seconds=SKIP_HOLD_SECONDS + 1)
    )
    assert SKIP_HOLD_SECONDS == 8 * 3600
    assert next_tasks(client, project)[0]["image"] == best["image"]


def test_a_release_that_is_not_a_skip_only_gives_the_lease_back(bob, as_user, project, images):
    client = as_user(bob)
    (best,) = next_tasks(client, project)
    response = client.post(f"/api/tasks/{best['image']}/release/", {"skip": False}, format="json")
    assert response.status_code == 204
    assert next_tasks(client, project)[0]["image"] == best["image"]
    refused = client.post(f"/api/tasks/{best['image']}/release/", {"skip": "yes"}, format="json")
    assert refused.status_code == 400
    assert "skip" in refused.json()["error"]["details"]


def test_the_queue_is_empty_when_everything_is_labeled(bob, as_user, project):
    ImageFactory(project=project, status=ImageStatus.LABELED, consensus_label="1")
    assert next_tasks(as_user(bob), project, count=5) == []


@pytest.mark.parametrize("count", [0, 51, -1, "many", None])
def test_a_count_out_of_range_is_a_400(bob, as_user, project, count):
    response = as_user(bob).post(
        f"/api/projects/{project.id}/tasks/next/", {"count": count}, format="json"
    )
    assert response.status_code == 400
    assert "count" in response.json()["error"]["message"]


def test_the_exploration_slice_is_a_uniform_sample_and_is_marked(bob, project):
    from labeling.annotations.services import task_lease_next

    project.exploration_fraction = 1.0
    project.save()
    batch = [ImageFactory.build(project=project, priority=float(i)) for i in range(200)]
    for image in batch:
        image.sha256 = uuid.uuid4().hex * 2
        image.storage_key = "unused"
        image.size_bytes = 1
    Image.objects.bulk_create(batch)
    tasks = task_lease_next(project=project, user=bob, count=50, rng=random.Random(1))
    assert all(t.exploration for t in tasks)
    priorities = sorted(
        Image.objects.filter(pk__in=[t.image_id for t in tasks]).values_list("priority", flat=True)
    )
    # Not the top 50 by priority (150..199): a spread over the whole pool.
    assert priorities[0] < 50 and priorities[-1] > 150


def test_the_exploration_fraction_is_honoured_on_average(bob, project):
    from labeling.annotations.services import task_lease_next

    project.exploration_fraction = 0.3
    project.save()
    rows = [
        Image(
            project=project,
            sha256=uuid.uuid4().hex * 2,
            storage_key="k",
            width=1,
            height=1,
            mode="L",
            format="PNG",
            original_name="x",
            size_bytes=1,
        )
        for _ in range(1000)
    ]
    Image.objects.bulk_create(rows)
    rng = random.Random(7)
    explored = 0
    for _ in range(20):
        tasks = task_lease_next(project=project, user=bob, count=25, rng=rng)
        explored += sum(t.exploration for t in tasks)
        Image.objects.filter(pk__in=[t.image_id for t in tasks]).update(status=ImageStatus.LABELED)
    assert 100 <= explored <= 200  # 500 tasks x 0.3 = 150 expected; +-5 sigma is ~+-50


def test_a_label_submitted_from_the_exploration_slice_marks_the_image(bob, as_user, project):
    image = ImageFactory(project=project)
    project.exploration_fraction = 1.0
    project.save()
    (task,) = next_tasks(as_user(bob), project)
    assert task["exploration"] is True
    assert submit(as_user(bob), image.id).status_code == 201
    assert Image.objects.get(pk=image.id).in_random_slice is True


def test_suggestions_are_shown_only_when_the_project_asks(bob, as_user, project):
    ImageFactory(project=project, predicted_label="7")
    project.exploration_fraction = 0
    project.save()
    assert next_tasks(as_user(bob), project)[0]["suggestion"] is None
    project.show_suggestions = True
    project.save()
    assert next_tasks(as_user(bob), project)[0]["suggestion"] == "7"


def test_a_submission_is_stored_once_however_often_it_is_replayed(bob, as_user, project, images):
    (task,) = next_tasks(as_user(bob), project)
    client_id = uuid.uuid4()
    first = submit(as_user(bob), task["image"], client_id=client_id, duration_ms=1200)
    assert first.status_code == 201
    for _ in range(3):
        replay = submit(as_user(bob), task["image"], client_id=client_id)
        assert replay.status_code == 200
        assert replay.json()["id"] == first.json()["id"]
    assert Annotation.objects.filter(client_id=client_id).count() == 1
    image = Image.objects.get(pk=task["image"])
    assert (image.status, image.consensus_label, image.leased_to_id) == ("labeled", "3", None)


def test_a_client_id_reused_by_someone_else_is_a_409(bob, carol, as_user, project, images):
    client_id = uuid.uuid4()
    assert submit(as_user(bob), images[0].id, client_id=client_id).status_code == 201
    response = submit(as_user(carol), images[1].id, client_id=client_id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "client_id_reused"


def test_an_unknown_label_is_a_400_and_stores_nothing(bob, as_user, project, images):
    response = submit(as_user(bob), images[0].id, label="cat")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_label"
    assert Annotation.objects.count() == 0


def test_an_image_of_another_project_is_a_404(bob, as_user, project):
    foreign = ImageFactory(project=ProjectFactory())
    response = submit(as_user(bob), foreign.id)
    assert response.status_code == 404
    assert Annotation.objects.count() == 0


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"label": "3", "client_id": "not-a-uuid"}, "client_id"),
        ({"label": "3"}, "client_id"),
        ({"client_id": str(uuid.uuid4())}, "label"),
        ({"label": "3", "client_id": str(uuid.uuid4()), "duration_ms": -5}, "duration_ms"),
    ],
)
def test_malformed_submissions_are_a_400(bob, as_user, project, images, payload, field):
    response = as_user(bob).post(
        "/api/annotations/", {"image": images[0].id, **payload}, format="json"
    )
    assert response.status_code == 400
    assert field in response.json()["error"]["message"]


def test_submitting_without_a_lease_for_a_fully_annotated_image_is_a_409(
    bob, carol, as_user, project, images
):
    assert submit(as_user(carol), images[0].id).status_code == 201
    response = submit(as_user(bob), images[0].id)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "not_needed"
    assert Annotation.objects.filter(image=images[0]).count() == 1


def test_an_annotator_changes_their_label_and_the_latest_counts(bob, as_user, project, images):
    assert submit(as_user(bob), images[0].id, label="3").status_code == 201
    assert submit(as_user(bob), images[0].id, label="8").status_code == 201
    image = Image.objects.get(pk=images[0].id)
    assert image.consensus_label == "8"
    assert image.annotation_count == 1
    assert list(Annotation.objects.filter(image=image).values_list("label", flat=True)) == [
        "3",
        "8",
    ]


def test_images_need_their_overlap_from_different_annotators(
    alice, bob, carol, as_user, project, images
):
    project.annotations_per_image = 3
    project.save()
    image = images[-1]  # the top priority
    for user, label in [(bob, "4"), (carol, "4")]:
        assert next_tasks(as_user(user), project)[0]["image"] == image.id
        assert submit(as_user(user), image.id, label=label).status_code == 201
    image.refresh_from_db()
    assert (image.status, image.annotation_count) == (ImageStatus.PARTIAL, 2)
    # bob has labeled it: he is served something else; alice still gets it.
    assert next_tasks(as_user(bob), project)[0]["image"] != image.id
    assert next_tasks(as_user(alice), project)[0]["image"] == image.id
    assert submit(as_user(alice), image.id, label="9").status_code == 201
    image.refresh_from_db()
    assert (image.status, image.consensus_label) == (ImageStatus.LABELED, "4")
    assert image.agreement == pytest.approx(2 / 3)


def test_a_tie_asks_for_more_labels_then_waits_for_an_admin(alice, bob, carol, as_user, project):
    project.annotations_per_image = 2
    project.save()
    image = ImageFactory(project=project)
    dave, erin = UserFactory(username="dave"), UserFactory(username="erin")
    for user in (dave, erin):
        Membership.objects.create(project=project, user=user, role=Role.ANNOTATOR)
    votes = [(bob, "1"), (carol, "2")]
    for user, label in votes:
        assert submit(as_user(user), image.id, label=label).status_code == 201
    image.refresh_from_db()
    assert image.status == ImageStatus.PARTIAL  # 1-1: one more, please
    assert submit(as_user(dave), image.id, label="3").status_code == 201
    image.refresh_from_db()
    assert image.status == ImageStatus.PARTIAL  # 1-1-1: still tied
    assert submit(as_user(erin), image.id, label="4").status_code == 201
    image.refresh_from_db()
    assert image.status == ImageStatus.DISPUTED  # still tied at the cap (2 + 2 extra)
    disputed = as_user(alice).get(f"/api/projects/{project.id}/disagreements/").json()
    assert [row["id"] for row in disputed] == [image.id]
    response = as_user(alice).post(
        f"/api/images/{image.id}/resolve/", {"label": "2"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["source"] == AnnotationSource.RESOLUTION
    image.refresh_from_db()
    assert (image.status, image.consensus_label, image.agreement) == ("labeled", "2", 0.25)


def test_resolving_with_an_unknown_label_is_a_400(alice, as_user, project, images):
    response = as_user(alice).post(
        f"/api/images/{images[0].id}/resolve/", {"label": "x"}, format="json"
    )
    assert response.status_code == 400


def test_imported_labels_are_never_served(bob, as_user, project):
    image = ImageFactory(project=project, status=ImageStatus.LABELED, consensus_label="5")
    Annotation.objects.create(
        image=image,
        annotator=bob,
        label="5",
        client_id=uuid.uuid4(),
        source=AnnotationSource.IMPORT,
    )
    assert next_tasks(as_user(bob), project) == []


def test_annotation_history_is_filterable_by_user(bob, carol, victor, as_user, project, images):
    submit(as_user(bob), images[0].id, label="1")
    submit(as_user(carol), images[1].id, label="2")
    rows = as_user(victor).get(f"/api/projects/{project.id}/annotations/?user=carol").json()
    assert [(r["annotator"], r["label"]) for r in rows["results"]] == [("carol", "2")]


def test_stats_report_agreement_per_annotator_and_per_class(
    alice, bob, carol, as_user, project, images
):
    project.annotations_per_image = 2
    project.save()
    for user, label in [(bob, "4"), (carol, "4")]:
        submit(as_user(user), images[0].id, label=label)
    for user, label in [(bob, "5"), (carol, "6"), (alice, "5")]:
        submit(as_user(user), images[1].id, label=label)
    stats = as_user(bob).get(f"/api/projects/{project.id}/stats/").json()["agreement"]
    assert stats["per_annotator"]["bob"] == {"labels_with_consensus": 2, "agreement": 1.0}
    assert stats["per_annotator"]["carol"] == {"labels_with_consensus": 2, "agreement": 0.5}
    assert stats["per_class"]["4"] == 1.0
    assert stats["per_class"]["5"] == pytest.approx(2 / 3)
    assert stats["per_class"]["0"] is None


def test_lowering_the_overlap_finishes_images_that_already_agree(
    alice, bob, carol, as_user, project, images
):
    from labeling.learning.models import RunTrigger, TrainingRun

    project.annotations_per_image, project.retrain_every = 3, 1
    project.save()
    agreed, single, tied = images[-1], images[-2], images[-3]
    for user, image, label in [(bob, agreed, "4"), (carol, agreed, "4"), (bob, single, "7")]:
        assert submit(as_user(user), image.id, label=label).status_code == 201
    for user, label in [(bob, "1"), (carol, "2")]:
        assert submit(as_user(user), tied.id, label=label).status_code == 201
    assert next_tasks(as_user(alice), project)[0]["image"] == agreed.id  # alice holds a lease

    response = as_user(alice).patch(
        f"/api/projects/{project.id}/", {"annotations_per_image": 2}, format="json"
    )
    assert response.status_code == 200
    agreed.refresh_from_db()
    assert (agreed.status, agreed.consensus_label, agreed.agreement) == ("labeled", "4", 1.0)
    assert agreed.leased_to_id is None  # done: alice's lease ended, her label is not needed
    assert submit(as_user(alice), agreed.id, label="4").status_code == 409
    assert Image.objects.get(pk=single.pk).status == ImageStatus.PARTIAL  # 1 of 2
    assert Image.objects.get(pk=tied.pk).status == ImageStatus.PARTIAL  # 1-1: one more
    # The new consensus label counts toward retrain_every like any other.
    assert TrainingRun.objects.filter(project=project, trigger=RunTrigger.AUTOMATIC).exists()

    # Raised again: a label that was reached stays.
    as_user(alice).patch(
        f"/api/projects/{project.id}/", {"annotations_per_image": 3}, format="json"
    )
    agreed.refresh_from_db()
    assert (agreed.status, agreed.consensus_label) == ("labeled", "4")


def test_raising_the_overlap_asks_for_more_votes_on_a_disputed_image(
    alice, bob, carol, as_user, project
):
    project.annotations_per_image = 2
    project.save()
    image = ImageFactory(project=project)
    voters = [bob, carol]
    for name in ("dave", "erin"):
        voters.append(UserFactory(username=name))
        Membership.objects.create(project=project, user=voters[-1], role=Role.ANNOTATOR)
    for user, label in zip(voters, "1234", strict=True):
        assert submit(as_user(user), image.id, label=label).status_code == 201
    image.refresh_from_db()
    assert image.status == ImageStatus.DISPUTED  # 1-1-1-1 at the cap of 2 + 2 extra
    response = as_user(alice).patch(
        f"/api/projects/{project.id}/", {"annotations_per_image": 3}, format="json"
    )
    assert response.status_code == 200
    image.refresh_from_db()
    assert image.status == ImageStatus.PARTIAL  # the cap is now 3 + 2: one more vote
    assert next_tasks(as_user(alice), project)[0]["image"] == image.id


def test_lowering_retrain_every_below_the_waiting_labels_retrains_at_once(
    alice, bob, as_user, project, images
):
    from labeling.learning.models import RunTrigger, TrainingRun

    project.retrain_every = 0
    project.save()
    for image in images[:3]:
        assert submit(as_user(bob), image.id, label="5").status_code == 201
    automatic = TrainingRun.objects.filter(project=project, trigger=RunTrigger.AUTOMATIC)
    assert not automatic.exists()
    settings_url = f"/api/projects/{project.id}/"
    as_user(alice).patch(settings_url, {"retrain_every": 4}, format="json")
    assert not automatic.exists()  # 3 labels < 4
    as_user(alice).patch(settings_url, {"retrain_every": 3}, format="json")
    assert automatic.count() == 1
