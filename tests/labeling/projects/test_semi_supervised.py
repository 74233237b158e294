"""The ``semi_supervised`` project setting in the API: off by default, read by members,
changed by admins only, anything but a JSON boolean a clear 400 (not coerced)."""

from __future__ import annotations

import pytest

from labeling.core import events
from labeling.projects.models import Project

pytestmark = pytest.mark.django_db


def patch(client, project, body):
    return client.patch(f"/api/projects/{project.pk}/", body, format="json")


def test_it_is_off_by_default_and_members_read_it(bob, as_user, project):
    assert as_user(bob).get(f"/api/projects/{project.pk}/").json()["semi_supervised"] is False


def test_an_admin_turns_it_on_and_the_change_is_announced(alice, as_user, project):
    seen = []

    def receiver(sender, *, project, changed, **_):
        seen.append(changed)

    events.project_settings_changed.connect(receiver, weak=False)
    try:
        response = patch(as_user(alice), project, {"semi_supervised": True})
    finally:
        events.project_settings_changed.disconnect(receiver)
    assert response.status_code == 200, response.content
    assert response.json()["semi_supervised"] is True
    project.refresh_from_db()
    assert project.semi_supervised is True
    assert seen == [{"semi_supervised": (False, True)}]


def test_a_project_is_created_with_it(staff, as_user):
    response = as_user(staff).post(
        "/api/projects/",
        {"name": "Photos", "labels": ["a", "b"], "semi_supervised": True},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Project.objects.get(name="Photos").semi_supervised is True


def test_an_annotator_cannot_change_it(bob, as_user, project):
    assert patch(as_user(bob), project, {"semi_supervised": True}).status_code == 403
    project.refresh_from_db()
    assert project.semi_supervised is False


@pytest.mark.parametrize("value", ["maybe", "true", 1, 2, None, [True]])
def test_a_value_that_is_not_a_boolean_is_a_400_naming_the_field(alice, as_user, project, value):
    response = patch(as_user(alice), project, {"semi_supervised": value})
    assert response.status_code == 400, response.content
    assert "semi_supervised" in response.json()["error"]["message"]
    project.refresh_from_db()
    assert project.semi_supervised is False


@pytest.mark.parametrize("field", ["semi_supervised", "show_suggestions"])
def test_json_numbers_and_words_are_refused_for_either_switch(alice, as_user, project, field):
    # show_suggestions took 1 and "yes" as true before: the schema says boolean.
    for value in (1, "yes", "true"):
        response = patch(as_user(alice), project, {field: value})
        assert response.status_code == 400, (field, value, response.content)
        assert field in response.json()["error"]["message"]


def test_a_form_says_true_or_false_in_words(staff, as_user):
    # A form has no types: its words are the only way to say it there.
    response = as_user(staff).post(
        "/api/projects/",
        {
            "name": "Form",
            "labels": ["a", "b"],
            "semi_supervised": "true",
            "show_suggestions": "false",
        },
        format="multipart",
    )
    assert response.status_code == 201, response.content
    project = Project.objects.get(name="Form")
    assert (project.semi_supervised, project.show_suggestions) == (True, False)
    refused = as_user(staff).post(
        "/api/projects/",
        {"name": "Form 2", "labels": ["a", "b"], "semi_supervised": "yes"},
        format="multipart",
    )
    assert refused.status_code == 400 and "semi_supervised" in refused.json()["error"]["message"]
