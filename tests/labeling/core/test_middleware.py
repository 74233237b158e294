"""Every answer under /api/ is JSON with the error body, whatever the path, method, slash,
Accept or Host, with DEBUG off (production) and on (``make demo``).

Run: ``.venv/bin/python -m pytest tests/labeling/core/test_middleware.py -q``
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import path
from rest_framework.test import APIClient

from labeling.urls import urlpatterns as app_urlpatterns
from tests.factories import ImageFactory

pytestmark = [pytest.mark.django_db, pytest.mark.parametrize("debug", [False, True])]


def explode(request):
    raise RuntimeError("a bug in a view")


# The app's URL conf plus one view that fails, for the 500 test below.
urlpatterns = [path("api/explode/", explode), *app_urlpatterns]


@pytest.fixture
def client(settings, debug, alice):
    settings.DEBUG = debug
    client = APIClient(raise_request_exception=False)
    client.force_authenticate(alice)
    return client


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]


def test_a_post_without_the_trailing_slash_is_a_json_308_to_the_slashed_path(
    client, project, debug
):
    image = ImageFactory(project=project)
    body = {"image": image.id, "label": "3", "client_id": str(uuid.uuid4())}
    response = client.post("/api/annotations?x=1", body, format="json")
    error = error_of(response, 308)
    assert response["Location"] == "/api/annotations/?x=1"
    assert error["code"] == "trailing_slash"
    assert "/api/annotations/" in error["message"]


def test_a_client_that_follows_the_308_gets_its_request_carried_out(client, project, debug):
    response = client.patch(
        f"/api/projects/{project.id}", {"retrain_every": 7}, format="json", follow=True
    )
    assert response.status_code == 200
    assert response.json()["retrain_every"] == 7


def test_a_get_without_the_trailing_slash_is_a_json_308_too(client, debug):
    response = client.get("/api/projects")
    assert error_of(response, 308)["details"] == {"location": "/api/projects/"}


@pytest.mark.parametrize(
    "url",
    [
        "/api",
        "/api/",
        "/api/projects/abc/",
        "/api/projects/-1/",
        "/api/model-versions/1/",
        "/api/nothing-here",
        "/api/projects/1/images/extra/",
    ],
)
def test_unrouted_paths_are_json_404s(client, url, debug):
    error = error_of(client.get(url), 404)
    assert error["code"] == "not_found"
    assert url in error["message"]
    error_of(client.post(url, {}, format="json"), 404)


def test_a_foreign_host_is_a_json_400_even_for_the_health_check(client, debug):
    response = APIClient().get("/api/health/", HTTP_HOST="evil.example")
    error = error_of(response, 400)
    assert error["code"] == "bad_host"
    assert error["details"] == {"host": "evil.example"}


def test_accept_text_html_never_turns_an_answer_into_html(client, debug):
    error = error_of(client.get("/api/projects/", HTTP_ACCEPT="text/html"), 406)
    assert error["code"] == "not_acceptable"
    browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
    response = client.get("/api/projects/", HTTP_ACCEPT=browser)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_the_browsable_api_is_off(client, debug):
    response = client.get("/api/projects/?format=api")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_the_interactive_docs_and_the_schema_are_still_served(client, debug):
    docs = APIClient().get("/api/docs/", HTTP_ACCEPT="text/html")
    assert docs.status_code == 200
    assert b"swagger" in docs.content.lower()
    schema = APIClient().get("/api/schema/")
    assert schema.status_code == 200
    assert schema.content.startswith(b"openapi: 3")
    as_json = APIClient().get("/api/schema/?format=json")
    assert as_json.json()["openapi"].startswith("3.")


@pytest.mark.urls(__name__)
def test_an_unexpected_error_is_a_json_500_without_the_debug_page(client, debug):
    error = error_of(client.get("/api/explode/"), 500)
    assert error["code"] == "server_error"
    assert "a bug in a view" not in error["message"]


def test_pages_outside_the_api_keep_their_own_answers(client, debug):
    response = client.get("/admin/login/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
