"""Auth, the error body, and the OpenAPI schema."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


def test_a_token_is_exchanged_for_a_password_and_authenticates(alice, project):
    client = APIClient()
    response = client.post(
        "/api/auth/token/", {"username": "alice", "password": "correct horse battery"}
    )
    assert response.status_code == 200
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    assert client.get("/api/projects/").json()[0]["slug"] == "digits"


def test_a_wrong_password_is_a_400_with_the_error_body(alice):
    response = APIClient().post("/api/auth/token/", {"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_the_token_endpoint_is_throttled(alice, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    cache.clear()
    client = APIClient()
    codes = [
        client.post("/api/auth/token/", {"username": "alice", "password": "x"}).status_code
        for _ in range(5)
    ]
    assert codes[:3] == [400, 400, 400]
    assert codes[3:] == [429, 429]


def test_a_bad_token_is_a_401(project):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef")
    response = client.get("/api/projects/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_session_writes_need_a_csrf_token(alice, staff):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post("/api/projects/", {"name": "X", "labels": ["a", "b"]}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_an_unknown_api_path_is_a_json_404(alice, as_user):
    response = as_user(alice).get("/api/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_openapi_schema_describes_every_endpoint():
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in [
        "/api/auth/token/",
        "/api/projects/",
        "/api/projects/{project_id}/",
        "/api/projects/{project_id}/members/",
        "/api/projects/{project_id}/images/",
        "/api/projects/{project_id}/stats/",
        "/api/images/{image_id}/",
        "/api/images/{image_id}/file/",
    ]:
        assert path in paths, path


def test_the_interactive_docs_are_served():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
