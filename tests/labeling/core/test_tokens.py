"""API tokens: a password change rotates them (whatever changed it), ``DELETE
/api/auth/token/`` revokes the caller's, and an optional lifetime expires them.

Run: ``.venv/bin/python -m pytest tests/labeling/core/test_tokens.py -q``
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.management.commands import changepassword
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.core.services import token_issue, token_revoke

pytestmark = pytest.mark.django_db

RIGHT = "correct horse battery"
NEW = "a much longer new passphrase 42"


def token_for(username: str, password: str = RIGHT) -> str:
    response = APIClient().post("/api/auth/token/", {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def status_with(key: str) -> int:
    return APIClient().get("/api/projects/", HTTP_AUTHORIZATION=f"Token {key}").status_code


def test_setting_a_new_password_revokes_the_users_token(alice, bob):
    old, others = token_for("alice"), token_for("bob")
    alice.set_password(NEW)
    alice.save()
    assert status_with(old) == 401
    assert status_with(others) == 200
    fresh = token_for("alice", NEW)
    assert fresh != old
    assert status_with(fresh) == 200


def test_a_password_changed_in_the_django_admin_revokes_the_token(alice, staff):
    old = token_for("alice")
    staff.is_superuser = True
    staff.save()
    admin = Client()  # the admin's HTML form, not the API
    admin.force_login(staff)
    page = admin.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": NEW, "password2": NEW, "usable_password": "true"},
    )
    assert page.status_code == 302, page.content[:500]
    assert status_with(old) == 401


def test_manage_py_changepassword_revokes_the_token(alice, monkeypatch):
    old = token_for("alice")
    # The command reads the new password twice from the terminal.
    monkeypatch.setattr(changepassword.getpass, "getpass", lambda prompt="": NEW)
    call_command("changepassword", "alice", stdout=None)
    assert status_with(old) == 401
    assert status_with(token_for("alice", NEW)) == 200


def test_logging_in_again_does_not_rotate_the_token(alice):
    assert token_for("alice") == token_for("alice")


def test_delete_auth_token_revokes_the_callers_token_only(alice, bob):
    key, others = token_for("alice"), token_for("bob")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.delete("/api/auth/token/").status_code == 204
    assert status_with(key) == 401
    assert status_with(others) == 200
    assert token_for("alice") != key


def test_delete_auth_token_needs_authentication(db):
    response = APIClient().delete("/api/auth/token/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_session_user_may_revoke_their_token_too(alice):
    key = token_for("alice")
    client = APIClient()
    client.force_login(alice)
    assert client.delete("/api/auth/token/").status_code == 204
    assert status_with(key) == 401


def test_without_a_lifetime_tokens_do_not_expire(alice, settings):
    assert settings.LABELLOOP_TOKEN_TTL_HOURS == 0
    key = token_for("alice")
    Token.objects.filter(key=key).update(created=timezone.now() - timedelta(days=3650))
    assert status_with(key) == 200


def test_a_token_older_than_its_lifetime_is_refused_and_a_login_issues_a_new_one(alice, settings):
    settings.LABELLOOP_TOKEN_TTL_HOURS = 24
    key = token_for("alice")
    assert status_with(key) == 200
    Token.objects.filter(key=key).update(created=timezone.now() - timedelta(hours=25))
    response = APIClient().get("/api/projects/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"
    assert "24 hours" in response.json()["error"]["message"]
    fresh = token_for("alice")
    assert fresh != key
    assert status_with(fresh) == 200


def test_the_services_issue_one_token_and_revoke_it(alice):
    first = token_issue(user=alice)
    assert token_issue(user=alice) == first
    assert token_revoke(user=alice) == 1
    assert token_revoke(user=alice) == 0
    assert token_issue(user=alice) != first
