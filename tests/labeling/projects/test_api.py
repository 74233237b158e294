"""Projects and members through the API, including every bad input."""

from __future__ import annotations

import pytest

from labeling.projects.models import Membership, Project, Role

pytestmark = pytest.mark.django_db


def test_staff_creates_a_project_and_becomes_its_admin(staff, as_user):
    response = as_user(staff).post(
        "/api/projects/",
        {"name": "Cats & Dogs", "labels": ["cat", "dog"], "input_size": 64, "input_channels": 3},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["slug"], body["labels"], body["role"]) == ("cats-dogs", ["cat", "dog"], "admin")
    assert body["strategy"] == "diverse"
    assert Membership.objects.get(project_id=body["id"], user=staff).role == Role.ADMIN


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"name": "X", "labels": ["only"]}, "labels"),
        ({"name": "X", "labels": ["a", "a"]}, "unique"),
        ({"name": "X", "labels": ["a", " "]}, "blank"),
        ({"name": "X", "labels": ["a", "b"], "input_size": 4}, "input_size"),
        ({"name": "X", "labels": ["a", "b"], "input_channels": 2}, "input_channels"),
        ({"name": "X", "labels": ["a", "b"], "exploration_fraction": 1.5}, "exploration_fraction"),
        ({"name": "X", "labels": ["a", "b"], "lease_seconds": 1}, "lease_seconds"),
        ({"name": "X", "labels": ["a", "b"], "strategy": "vibes"}, "strategy"),
        ({"name": "!!!", "labels": ["a", "b"]}, "letters or digits"),
        ({"labels": ["a", "b"]}, "name"),
        ({"name": "X", "labels": "a,b"}, "labels"),
        ({"name": "X", "labels": [0.1, 5e16]}, "labels"),  # numbers are not class names
    ],
)
def test_bad_project_settings_are_a_400_naming_the_problem(staff, as_user, payload, fragment):
    response = as_user(staff).post("/api/projects/", payload, format="json")
    assert response.status_code == 400, response.content
    assert fragment in response.json()["error"]["message"]
    assert Project.objects.count() == 0


def test_an_empty_class_in_a_multipart_form_is_a_400_too(staff, as_user):
    """A form sends each class as its own part; an empty part is a blank class, not none."""
    response = as_user(staff).post(
        "/api/projects/", {"name": "X", "labels": ["a", "", "b"]}, format="multipart"
    )
    assert response.status_code == 400, response.content
    assert "blank" in response.json()["error"]["message"]
    assert Project.objects.count() == 0


def test_a_taken_slug_is_a_409(staff, as_user, project):
    response = as_user(staff).post(
        "/api/projects/", {"name": "Digits", "labels": ["a", "b"]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "slug"


def test_an_admin_changes_settings_and_cannot_change_the_slug(alice, as_user, project):
    client = as_user(alice)
    response = client.patch(
        f"/api/projects/{project.id}/",
        {"annotations_per_image": 3, "show_suggestions": True},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["annotations_per_image"] == 3
    assert response.json()["show_suggestions"] is True
    response = client.patch(f"/api/projects/{project.id}/", {"slug": "other"}, format="json")
    assert response.status_code == 400
    project.refresh_from_db()
    assert (project.slug, project.annotations_per_image) == ("digits", 3)


def test_classes_with_annotations_cannot_be_removed(alice, as_user, project):
    from labeling.annotations.models import Annotation
    from tests.factories import ImageFactory

    image = ImageFactory(project=project)
    Annotation.objects.create(
        image=image, annotator=alice, label="3", client_id=__import__("uuid").uuid4()
    )
    response = as_user(alice).patch(
        f"/api/projects/{project.id}/", {"labels": ["0", "1", "2"]}, format="json"
    )
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "'3'" in message and f"/api/projects/{project.id}/labels/rename/" in message
    project.refresh_from_db()
    assert len(project.labels) == 10


def test_members_are_added_changed_and_removed(alice, mallory, as_user, project):
    client = as_user(alice)
    url = f"/api/projects/{project.id}/members/"
    assert (
        client.post(url, {"username": "mallory", "role": "viewer"}, format="json").status_code
        == 201
    )
    assert (
        client.post(url, {"username": "mallory", "role": "annotator"}, format="json").status_code
        == 201
    )
    roles = {m["username"]: m["role"] for m in client.get(url).json()}
    assert roles == {
        "alice": "admin",
        "bob": "annotator",
        "victor": "viewer",
        "mallory": "annotator",
    }
    assert client.delete(url, {"username": "mallory"}, format="json").status_code == 204
    assert not Membership.objects.filter(project=project, user=mallory).exists()


@pytest.mark.parametrize(
    ("payload", "status", "code"),
    [
        ({"username": "nobody", "role": "viewer"}, 404, "user_not_found"),
        ({"username": "gone", "role": "viewer"}, 404, "user_not_found"),  # a disabled account
        ({"username": "bob", "role": "overlord"}, 400, "invalid"),
        ({"role": "viewer"}, 400, "invalid"),
    ],
)
def test_bad_member_requests_are_rejected(alice, as_user, project, payload, status, code):
    from tests.factories import UserFactory

    UserFactory(username="gone", is_active=False)
    response = as_user(alice).post(f"/api/projects/{project.id}/members/", payload, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


def test_the_last_admin_cannot_be_removed_or_demoted(alice, as_user, project):
    url = f"/api/projects/{project.id}/members/"
    client = as_user(alice)
    assert client.delete(url + "?username=alice").status_code == 409
    response = client.post(url, {"username": "alice", "role": "viewer"}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "last_admin"


def test_removing_a_non_member_is_a_404(alice, as_user, project, mallory):
    response = as_user(alice).delete(f"/api/projects/{project.id}/members/?username=mallory")
    assert response.status_code == 404


def test_deleting_a_project_deletes_its_images(alice, as_user, project):
    from labeling.images.models import Image
    from tests.factories import ImageFactory

    ImageFactory.create_batch(3, project=project)
    assert as_user(alice).delete(f"/api/projects/{project.id}/").status_code == 204
    assert Image.objects.count() == 0


def test_adding_a_member_does_not_tell_an_unknown_username_from_a_disabled_account(
    alice, as_user, project
):
    from tests.factories import UserFactory

    UserFactory(username="gone", is_active=False)
    url = f"/api/projects/{project.id}/members/"
    answers = {
        name: as_user(alice).post(url, {"username": name, "role": "viewer"}, format="json")
        for name in ("gone", "ghost")
    }
    assert answers["gone"].status_code == answers["ghost"].status_code == 404
    bodies = {name: r.content.decode().replace(name, "NAME") for name, r in answers.items()}
    assert bodies["gone"] == bodies["ghost"]
    assert not Membership.objects.filter(project=project, user__username="gone").exists()


def test_the_project_list_says_how_many_images_are_labeled(bob, as_user, project):
    from tests.factories import ImageFactory

    ImageFactory.create_batch(3, project=project)
    ImageFactory.create_batch(2, project=project, status="labeled", consensus_label="1")
    (listed,) = as_user(bob).get("/api/projects/").json()
    assert (listed["image_count"], listed["labeled_count"]) == (5, 2)
    assert as_user(bob).get(f"/api/projects/{project.id}/").json()["labeled_count"] is None
