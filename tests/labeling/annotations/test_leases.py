"""Leases are enforced: only ``tasks/next`` creates one, ``renew`` extends one's own live
lease, and a label for an image someone else holds is refused (issue 26, finding 2)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from labeling.annotations.models import Annotation, LeaseLog
from labeling.images.models import Image, ImageStatus
from labeling.projects.models import Membership, Role
from tests.factories import UserFactory
from tests.labeling.annotations.helpers import expire_leases, next_tasks, submit

pytestmark = pytest.mark.django_db


def renew(client, image_id):
    return client.post(f"/api/tasks/{image_id}/renew/")


def error_of(response) -> tuple[int, str, str]:
    assert response.status_code >= 400, response.content
    error = response.json()["error"]
    return response.status_code, error["code"], error["message"]


# --- renew ---


def test_renew_extends_my_live_lease(bob, as_user, project, images):
    (task,) = next_tasks(as_user(bob), project)
    soon = timezone.now() + timedelta(seconds=30)
    Image.objects.filter(pk=task["image"]).update(lease_expires=soon)
    response = renew(as_user(bob), task["image"])
    assert response.status_code == 200
    image = Image.objects.get(pk=task["image"])
    assert image.lease_expires > timezone.now() + timedelta(seconds=project.lease_seconds - 5)
    log = LeaseLog.objects.get(image=image, user=bob)
    assert log.expires_at == image.lease_expires


def test_annotator_cannot_renew_a_lease_they_never_held(bob, as_user, project, images):
    status, code, message = error_of(renew(as_user(bob), images[0].id))
    assert (status, code) == (409, "no_lease")
    assert "no lease" in message
    image = Image.objects.get(pk=images[0].id)
    assert image.leased_to_id is None
    assert not LeaseLog.objects.exists()


def test_annotator_cannot_hoard_the_queue_by_renewing_every_image(
    bob, carol, as_user, project, images
):
    for image in images:
        assert renew(as_user(bob), image.id).status_code == 409
    assert len(next_tasks(as_user(carol), project, count=10)) == 10


def test_annotator_cannot_renew_their_expired_lease(bob, as_user, project, images):
    (task,) = next_tasks(as_user(bob), project)
    expire_leases([task["image"]])
    status, code, message = error_of(renew(as_user(bob), task["image"]))
    assert (status, code) == (409, "lease_expired")
    assert "expired" in message
    assert Image.objects.get(pk=task["image"]).lease_expires < timezone.now()


def test_an_expired_lease_taken_by_another_annotator_is_lost_to_its_first_holder(
    bob, carol, as_user, project, images
):
    (task,) = next_tasks(as_user(bob), project)
    expire_leases([task["image"]])
    assert next_tasks(as_user(carol), project)[0]["image"] == task["image"]
    status, code, message = error_of(renew(as_user(bob), task["image"]))
    assert (status, code) == (409, "lease_lost")
    assert "another annotator" in message
    assert Image.objects.get(pk=task["image"]).leased_to_id == carol.pk


def test_annotator_cannot_renew_a_lease_another_annotator_holds(
    bob, carol, as_user, project, images
):
    (task,) = next_tasks(as_user(bob), project)
    assert error_of(renew(as_user(carol), task["image"]))[:2] == (409, "lease_lost")
    assert Image.objects.get(pk=task["image"]).leased_to_id == bob.pk


def test_a_lease_someone_else_let_expire_is_still_no_lease_of_mine(
    bob, carol, as_user, project, images
):
    (task,) = next_tasks(as_user(carol), project)
    expire_leases([task["image"]])
    assert error_of(renew(as_user(bob), task["image"]))[:2] == (409, "no_lease")
    assert Image.objects.get(pk=task["image"]).leased_to_id == carol.pk


# --- submitting a label ---


def test_a_label_for_an_image_leased_to_another_annotator_is_refused(
    bob, carol, as_user, project, images
):
    (task,) = next_tasks(as_user(carol), project)
    status, code, message = error_of(submit(as_user(bob), task["image"]))
    assert (status, code) == (409, "leased_to_another")
    assert "another annotator" in message and "nothing was recorded" in message
    assert not Annotation.objects.exists()
    # The real holder's label is then taken as usual.
    assert submit(as_user(carol), task["image"]).status_code == 201
    image = Image.objects.get(pk=task["image"])
    assert (image.status, image.consensus_label, image.leased_to_id) == ("labeled", "3", None)


def test_a_late_label_is_refused_once_the_image_was_leased_to_someone_else(
    bob, carol, as_user, project, images
):
    (task,) = next_tasks(as_user(bob), project)
    expire_leases([task["image"]])
    assert next_tasks(as_user(carol), project)[0]["image"] == task["image"]
    assert error_of(submit(as_user(bob), task["image"]))[:2] == (409, "leased_to_another")
    assert submit(as_user(carol), task["image"]).status_code == 201
    assert list(Annotation.objects.values_list("annotator", flat=True)) == [carol.pk]


def test_a_late_label_is_accepted_while_the_image_needs_it_and_nobody_holds_it(
    bob, carol, as_user, project, images
):
    (task,) = next_tasks(as_user(bob), project)
    expire_leases([task["image"]])
    assert submit(as_user(bob), task["image"]).status_code == 201
    # And once carol's lease of another image lapsed unused, bob may label that one too.
    (theirs,) = next_tasks(as_user(carol), project)
    expire_leases([theirs["image"]])
    assert submit(as_user(bob), theirs["image"]).status_code == 201
    response = submit(as_user(carol), theirs["image"])  # it needs nothing more now
    assert error_of(response)[:2] == (409, "not_needed")
    assert "your lease had expired" in error_of(response)[2]
    assert Annotation.objects.filter(image_id=theirs["image"]).count() == 1


def test_the_holder_of_an_image_an_admin_resolved_is_not_told_their_lease_expired(
    alice, bob, as_user, project, images
):
    (task,) = next_tasks(as_user(bob), project)
    resolved = as_user(alice).post(
        f"/api/images/{task['image']}/resolve/", {"label": "5"}, format="json"
    )
    assert resolved.status_code == 201
    status, code, message = error_of(submit(as_user(bob), task["image"]))
    assert (status, code) == (409, "not_needed")
    assert "expired" not in message and "never held" not in message
    assert "ended before your label arrived" in message


def test_a_label_without_any_lease_says_so_when_the_image_is_done(
    bob, carol, as_user, project, images
):
    assert submit(as_user(carol), images[0].id).status_code == 201
    status, code, message = error_of(submit(as_user(bob), images[0].id))
    assert (status, code) == (409, "not_needed")
    assert "you held no lease on it" in message


def test_an_annotator_may_change_their_own_label_while_another_holds_the_image(
    bob, carol, as_user, project, images
):
    project.annotations_per_image = 3
    project.save()
    image = images[-1]
    assert next_tasks(as_user(bob), project)[0]["image"] == image.id
    assert submit(as_user(bob), image.id, label="4").status_code == 201
    assert next_tasks(as_user(carol), project)[0]["image"] == image.id
    assert submit(as_user(bob), image.id, label="7").status_code == 201  # a corrected vote
    assert Image.objects.get(pk=image.id).leased_to_id == carol.pk
    assert submit(as_user(carol), image.id, label="7").status_code == 201
    image.refresh_from_db()
    assert (image.status, image.annotation_count) == (ImageStatus.PARTIAL, 2)


def test_an_admin_may_resolve_an_image_another_annotator_holds(
    alice, bob, as_user, project, images
):
    (task,) = next_tasks(as_user(bob), project)
    response = as_user(alice).post(
        f"/api/images/{task['image']}/resolve/", {"label": "2"}, format="json"
    )
    assert response.status_code == 201
    image = Image.objects.get(pk=task["image"])
    assert (image.status, image.consensus_label, image.leased_to_id) == ("labeled", "2", None)


def test_a_third_annotator_is_refused_while_the_second_holds_the_last_vote(
    bob, carol, as_user, project, images
):
    project.annotations_per_image = 2
    project.save()
    dave = UserFactory(username="dave")
    Membership.objects.create(project=project, user=dave, role=Role.ANNOTATOR)
    image = images[-1]
    assert submit(as_user(bob), image.id, label="4").status_code == 201
    assert next_tasks(as_user(carol), project)[0]["image"] == image.id
    assert error_of(submit(as_user(dave), image.id))[:2] == (409, "leased_to_another")
    assert submit(as_user(carol), image.id, label="4").status_code == 201
    assert Image.objects.get(pk=image.id).status == ImageStatus.LABELED


def test_renewing_a_lease_never_stretches_an_earlier_lapsed_one_in_the_log(
    bob, carol, as_user, project, images
):
    (task,) = next_tasks(as_user(bob), project)
    expire_leases([task["image"]])
    lapsed = LeaseLog.objects.get(user=bob).expires_at
    assert next_tasks(as_user(carol), project)[0]["image"] == task["image"]
    assert as_user(carol).post(f"/api/tasks/{task['image']}/release/").status_code == 204
    assert next_tasks(as_user(bob), project)[0]["image"] == task["image"]  # leased again
    next_tasks(as_user(bob), project)  # renews it
    assert renew(as_user(bob), task["image"]).status_code == 200
    first, second = LeaseLog.objects.filter(user=bob).order_by("leased_at")
    # The first lease ran out before carol's began: the log must not say bob held it then.
    assert first.expires_at == lapsed
    assert second.expires_at == Image.objects.get(pk=task["image"]).lease_expires
