"""The web UI's Django side: the SPA index for client routes, and the session endpoints."""

from __future__ import annotations

import re

import pytest
from django.core.cache import cache
from django.test import Client
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"  # tests/factories.py
INDEX = '<!doctype html><html><head></head><body><div id="root"></div></body></html>'


@pytest.fixture
def built(settings, tmp_path):
    """A stand-in for frontend/dist, so these tests do not need npm."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text(INDEX)
    settings.LABELLOOP_FRONTEND_DIST = dist
    return dist


@pytest.fixture
def not_built(settings, tmp_path):
    settings.LABELLOOP_FRONTEND_DIST = tmp_path / "missing"


@pytest.mark.parametrize(
    "path,status",
    [
        ("/", 200),
        ("/login", 200),
        ("/projects/1/label", 200),
        ("/projects/7/admin", 200),
        ("/projects/7/admin/model", 200),
        ("/projects/7/admin/webhooks/", 200),
        # Unknown URLs get the app (it says "Page not found") with a 404, not a silent 200.
        ("/projects/7/admin/nonsense", 404),
        ("/projects/7/labels", 404),
        ("/anything/else", 404),
    ],
)
def test_client_routes_get_the_app_with_a_csrf_cookie(built, path, status):
    response = Client().get(path)
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    assert '<div id="root">' in response.content.decode()
    assert "csrftoken" in response.cookies
    assert "no-cache" in response["Cache-Control"]


def test_the_app_page_says_who_is_logged_in(built, alice, staff):
    client = Client()
    assert '<script id="labelloop-me" type="application/json">null</script>' in (
        client.get("/").content.decode()
    )
    client.force_login(staff)
    page = client.get("/projects/1/admin").content.decode()
    assert '{"username": "sam", "is_staff": true}</script></head>' in page


def test_a_username_cannot_break_out_of_the_page_script(built, alice):
    alice.username = "</script><script>alert(1)</script>"
    alice.save()
    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "<script>alert(1)" not in page
    assert "\\u003C/script\\u003E" in page


def test_a_missing_build_is_a_503_that_says_how_to_build_it(not_built):
    response = Client().get("/projects/1/label")
    assert response.status_code == 503
    assert "make frontend" in response.content.decode()


def test_the_app_view_only_answers_reads(built):
    assert Client().post("/login").status_code == 405
    assert Client().put("/projects/1/label").status_code == 405
    assert Client().head("/login").status_code == 200


@pytest.mark.parametrize("path", ["/api/nothing-here/", "/api/projects/x/", "/api"])
def test_unknown_api_paths_stay_json_404s_not_the_app(built, path):
    response = Client().get(path, follow=True)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_static_and_admin_are_not_swallowed_by_the_app(built):
    assert Client().get("/static/no-such-file.js").status_code == 404
    assert Client().get("/admin/").status_code == 302  # Django admin's login


def test_login_sets_a_session_that_the_api_accepts(alice, project):
    client = APIClient()
    response = client.post("/api/auth/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json() == {"username": "alice", "is_staff": False}
    assert "sessionid" in response.cookies
    assert client.get("/api/projects/").json()[0]["slug"] == "digits"
    assert client.get("/api/auth/me/").json() == {"username": "alice", "is_staff": False}


def test_me_says_staff_for_staff(staff):
    client = APIClient()
    client.force_login(staff)
    assert client.get("/api/auth/me/").json() == {"username": "sam", "is_staff": True}


def test_me_is_a_401_with_the_error_body_when_nobody_is_logged_in(db):
    response = APIClient().get("/api/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert "csrftoken" in response.cookies  # so the login page can post next


def test_a_wrong_password_is_a_400_with_the_error_body(alice):
    client = APIClient()
    response = client.post("/api/auth/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_credentials",
        "message": "wrong username or password",
        "details": None,
    }
    assert client.get("/api/auth/me/").status_code == 401


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(db):
    response = APIClient().post("/api/auth/login/", {"username": "nobody", "password": "x"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_credentials"


def test_an_inactive_user_cannot_log_in(alice):
    alice.is_active = False
    alice.save()
    response = APIClient().post("/api/auth/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 400


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "alice"}, {"password": PASSWORD}, {"username": "", "password": ""}],
)
def test_missing_fields_are_a_400_naming_them(alice, body):
    response = APIClient().post("/api/auth/login/", body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["details"]) <= {"username", "password"}


def test_a_non_json_body_is_a_400_not_a_500(alice):
    response = APIClient().post("/api/auth/login/", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_login_needs_the_csrf_token(alice):
    client = APIClient(enforce_csrf_checks=True)
    response = client.post("/api/auth/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_login_with_the_csrf_token_from_the_app_page_works(built, alice):
    client = Client(enforce_csrf_checks=True)
    token = client.get("/login").cookies["csrftoken"].value
    response = client.post(
        "/api/auth/login/",
        {"username": "alice", "password": PASSWORD},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200
    # Login rotates the token: the old one no longer authorises a write.
    stale = client.post("/api/auth/logout/", HTTP_X_CSRFTOKEN=token)
    assert stale.status_code == 403
    fresh = client.cookies["csrftoken"].value
    assert client.post("/api/auth/logout/", HTTP_X_CSRFTOKEN=fresh).status_code == 204
    assert client.get("/api/auth/me/").status_code == 401


def test_logout_without_a_session_is_harmless(db):
    assert APIClient().post("/api/auth/logout/").status_code == 204


def test_get_is_not_a_way_to_log_in_or_out(alice):
    assert APIClient().get("/api/auth/login/").status_code == 405
    client = APIClient()
    client.force_login(alice)
    assert client.get("/api/auth/logout/").status_code == 405
    assert client.get("/api/auth/me/").status_code == 200


def test_login_is_throttled(alice, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    cache.clear()
    client = APIClient()
    codes = [
        client.post("/api/auth/login/", {"username": "alice", "password": "x"}).status_code
        for _ in range(5)
    ]
    throttled = client.post("/api/auth/login/", {"username": "alice", "password": "x"})
    assert codes == [400, 400, 400, 429, 429]
    assert throttled.json()["error"]["code"] == "throttled"
    assert throttled.json()["error"]["details"]["retry_after_seconds"] > 0


def test_the_server_knows_every_dashboard_tab_the_web_ui_has():
    """A tab the server does not list answers 404 under its own URL (the Map tab did, when it
    was added on one side only)."""
    from pathlib import Path

    from labeling.web.views import DASHBOARD_TABS

    source = Path(__file__).resolve().parents[3] / "frontend/src/pages/dashboard/Dashboard.tsx"
    tabs = re.findall(r'\{ id: "([a-z_]+)", title:', source.read_text())
    assert tabs and set(tabs) == set(DASHBOARD_TABS.split("|"))
