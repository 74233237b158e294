"""``?ordering=``: an unknown field is a 400 naming the allowed ones, not silently ignored.

Run: ``.venv/bin/python -m pytest tests/labeling/core/test_filters.py -q``
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import ImageFactory

pytestmark = pytest.mark.django_db


def images(client, project, ordering: str):
    return client.get(f"/api/projects/{project.id}/images/", {"ordering": ordering})


@pytest.mark.parametrize("ordering", ["bogus", "-bogus", "id,bogus", "sha256", "id,", "--id"])
def test_an_unknown_ordering_is_a_400_naming_the_allowed_values(as_user, alice, project, ordering):
    response = images(as_user(alice), project, ordering)
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert "id, created_at, priority, confidence, uncertainty" in error["message"]
    assert error["details"]["parameter"] == "ordering"
    assert error["details"]["choices"] == [
        "id",
        "created_at",
        "priority",
        "confidence",
        "uncertainty",
    ]


def test_known_orderings_still_sort(as_user, alice, project):
    made = [ImageFactory(project=project, priority=p) for p in (0.2, 0.9, 0.5)]
    client = as_user(alice)
    by_priority = [row["id"] for row in images(client, project, "-priority").json()["results"]]
    assert by_priority == [made[1].id, made[2].id, made[0].id]
    both = images(client, project, "priority,-id")
    assert both.status_code == 200
    assert images(client, project, "").status_code == 200


def test_the_schema_lists_the_orderings():
    schema = APIClient().get("/api/schema/?format=json").json()
    parameters = schema["paths"]["/api/projects/{project_id}/images/"]["get"]["parameters"]
    ordering = next(p for p in parameters if p["name"] == "ordering")
    assert "-confidence" in ordering["schema"]["enum"]
    assert "-uncertainty" in ordering["schema"]["enum"]
