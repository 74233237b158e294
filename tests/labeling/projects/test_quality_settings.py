"""The label-quality settings of a project in the API: ``consensus_method``, ``gold_rate``,
``gold_alert_accuracy``: read by members, changed by admins, out-of-range values a clear 400."""

from __future__ import annotations

import pytest

from labeling.projects.models import Project

pytestmark = pytest.mark.django_db


def patch(client, project, body):
    return client.patch(f"/api/projects/{project.pk}/", body, format="json")


def test_members_read_the_quality_settings_with_their_defaults(bob, as_user, project):
    body = as_user(bob).get(f"/api/projects/{project.pk}/").json()
    assert (body["consensus_method"], body["gold_rate"], body["gold_alert_accuracy"]) == (
        "weighted",
        0.05,
        0.7,
    )


def test_an_admin_changes_them(alice, as_user, project):
    response = patch(
        as_user(alice),
        project,
        {"consensus_method": "majority", "gold_rate": 0.5, "gold_alert_accuracy": 0},
    )
    assert response.status_code == 200, response.content
    project.refresh_from_db()
    assert (project.consensus_method, project.gold_rate, project.gold_alert_accuracy) == (
        "majority",
        0.5,
        0.0,
    )


def test_a_project_is_created_with_them(staff, as_user):
    response = as_user(staff).post(
        "/api/projects/",
        {"name": "Birds", "labels": ["a", "b"], "gold_rate": 0.1, "consensus_method": "majority"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Project.objects.get(name="Birds").gold_rate == 0.1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"consensus_method": "dawid"}, "consensus_method"),
        ({"consensus_method": None}, "consensus_method"),
        ({"gold_rate": 0.6}, "gold_rate"),
        ({"gold_rate": -0.1}, "gold_rate"),
        ({"gold_rate": "often"}, "gold_rate"),
        ({"gold_alert_accuracy": 1.5}, "gold_alert_accuracy"),
        ({"gold_alert_accuracy": -1}, "gold_alert_accuracy"),
    ],
)
def test_an_out_of_range_or_unknown_value_is_a_400_naming_the_field(
    alice, as_user, project, body, field
):
    response = patch(as_user(alice), project, body)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["message"]
    project.refresh_from_db()
    assert (project.consensus_method, project.gold_rate, project.gold_alert_accuracy) == (
        "weighted",
        0.05,
        0.7,
    )


def test_an_annotator_cannot_change_them(bob, as_user, project):
    assert patch(as_user(bob), project, {"gold_rate": 0.0}).status_code == 403
    project.refresh_from_db()
    assert project.gold_rate == 0.05
