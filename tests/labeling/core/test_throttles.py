"""Failed logins and failed tokens are throttled: by the client address that the trusted
proxies vouch for (never by what the client writes in X-Forwarded-For), and by username.

Run: ``.venv/bin/python -m pytest tests/labeling/core/test_throttles.py -q``
"""

from __future__ import annotations

from ipaddress import ip_network

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.core.env import env_trusted_proxies
from labeling.core.throttles import client_address

pytestmark = pytest.mark.django_db

RIGHT = "correct horse battery"
ENDPOINTS = ["/api/auth/token/", "/api/auth/login/"]


@pytest.fixture
def tight_rates(settings):
    """3 failures a minute per address, 5 an hour per username, 3 bad tokens a minute."""
    rates = {"auth": "3/min", "auth_username": "5/hour", "bad_token": "3/min"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    cache.clear()
    yield
    cache.clear()


def log_in(path: str, password: str, **extra):
    return APIClient().post(path, {"username": "alice", "password": password}, **extra)


@pytest.mark.parametrize("path", ENDPOINTS)
def test_a_new_x_forwarded_for_per_request_does_not_escape_the_login_throttle(
    path, alice, tight_rates
):
    codes = [
        log_in(path, f"guess{i}", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(5)
    ]
    assert codes == [400, 400, 400, 429, 429]
    right = log_in(path, RIGHT, HTTP_X_FORWARDED_FOR="203.0.113.99")
    assert right.status_code == 429
    assert right.json()["error"]["code"] == "throttled"
    assert int(right["Retry-After"]) > 0


@pytest.mark.parametrize("path", ENDPOINTS)
def test_failed_logins_are_throttled_per_username_from_any_address(path, alice, bob, tight_rates):
    codes = [log_in(path, f"guess{i}", REMOTE_ADDR=f"198.51.100.{i}").status_code for i in range(7)]
    assert codes == [400] * 5 + [429] * 2
    # Even the right password, from a fresh address: the throttle is no oracle.
    throttled = log_in(path, RIGHT, REMOTE_ADDR="192.0.2.200")
    assert throttled.status_code == 429
    assert throttled.json()["error"]["details"]["retry_after_seconds"] > 0
    # Another user at the same addresses is not held back by alice's throttle.
    bob_in = APIClient().post(path, {"username": "bob", "password": RIGHT}, REMOTE_ADDR="192.0.2.1")
    assert bob_in.status_code == 200


def test_failed_logins_count_across_both_endpoints(alice, tight_rates):
    log_in("/api/auth/token/", "a")
    log_in("/api/auth/login/", "b")
    log_in("/api/auth/token/", "c")
    assert log_in("/api/auth/login/", RIGHT).status_code == 429


def test_successful_logins_are_not_counted_as_failures(alice, tight_rates):
    codes = [log_in("/api/auth/token/", RIGHT).status_code for _ in range(6)]
    assert codes == [200] * 6


def test_the_admin_login_counts_failures_and_refuses_a_throttled_username(alice, tight_rates):
    """The Django admin's login form goes through the same authentication backend."""
    alice.is_staff = True
    alice.save()
    client = Client()  # the admin's HTML form, not the API
    for i in range(5):
        page = client.post(
            "/admin/login/",
            {"username": "alice", "password": f"g{i}"},
            REMOTE_ADDR=f"198.51.100.{i}",
        )
        assert page.status_code == 200  # the form again, with its error
    right = client.post(
        "/admin/login/", {"username": "alice", "password": RIGHT}, REMOTE_ADDR="192.0.2.8"
    )
    assert right.status_code == 200, "a throttled username must not log in"
    assert log_in("/api/auth/token/", RIGHT, REMOTE_ADDR="192.0.2.9").status_code == 429


# --- failed tokens ----------------------------------------------------------------------------


def test_bad_tokens_are_throttled_with_429_retry_after_and_the_error_body(tight_rates):
    client = APIClient()
    responses = [
        client.get("/api/projects/", HTTP_AUTHORIZATION=f"Token {i:040x}") for i in range(5)
    ]
    assert [r.status_code for r in responses] == [401, 401, 401, 429, 429]
    last = responses[-1]
    assert last["Content-Type"] == "application/json"
    assert last.json()["error"]["code"] == "throttled"
    assert int(last["Retry-After"]) > 0


def test_malformed_token_headers_count_as_bad_tokens(tight_rates):
    client = APIClient()
    codes = [
        client.get("/api/projects/", HTTP_AUTHORIZATION=header).status_code
        for header in ["Token", "Token a b", "Token \u00e9", "Token x"]
    ]
    assert codes == [401, 401, 401, 429]


def test_a_valid_token_is_not_refused_because_others_sent_bad_ones(alice, project, tight_rates):
    client = APIClient()
    for i in range(4):
        client.get("/api/projects/", HTTP_AUTHORIZATION=f"Token {i:040x}")
    key = Token.objects.create(user=alice).key
    assert client.get("/api/projects/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200


# --- which address is the client's ------------------------------------------------------------


def request_from(remote: str, forwarded: str | None = None):
    extra = {"REMOTE_ADDR": remote}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    return RequestFactory().get("/api/projects/", **extra)


def test_by_default_no_proxy_is_trusted_and_x_forwarded_for_is_ignored(settings):
    assert settings.LABELLOOP_TRUSTED_PROXIES == 0
    assert client_address(request_from("192.0.2.7", "203.0.113.1")) == "192.0.2.7"


def test_behind_one_proxy_the_address_it_appended_is_the_client(settings):
    settings.LABELLOOP_TRUSTED_PROXIES = 1
    # The client wrote the first entry itself; the proxy appended the address it saw.
    spoofed = request_from("10.0.0.2", "203.0.113.1, 198.51.100.7")
    assert client_address(spoofed) == "198.51.100.7"
    assert client_address(request_from("10.0.0.2", "198.51.100.8")) == "198.51.100.8"
    assert client_address(request_from("10.0.0.2")) == "10.0.0.2"


def test_behind_trusted_networks_the_first_untrusted_hop_from_the_right_is_the_client(settings):
    settings.LABELLOOP_TRUSTED_PROXIES = (ip_network("10.0.0.0/8"), ip_network("fd00::/8"))
    chain = request_from("10.0.0.5", "203.0.113.1, 198.51.100.7, 10.1.2.3")
    assert client_address(chain) == "198.51.100.7"
    # A peer outside the trusted networks is the client, whatever it forwards.
    assert client_address(request_from("192.0.2.7", "203.0.113.1")) == "192.0.2.7"
    # Only trusted hops: the leftmost one is as far as the chain can be followed.
    assert client_address(request_from("10.0.0.5", "fd00::1, 10.9.9.9")) == "fd00::1"


def test_with_a_trusted_proxy_each_real_client_has_its_own_throttle(settings, alice, tight_rates):
    settings.LABELLOOP_TRUSTED_PROXIES = 1
    for i in range(3):
        log_in(
            "/api/auth/token/",
            "x",
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"1.1.1.{i}, 198.51.100.7",
        )
    behind = {"REMOTE_ADDR": "10.0.0.2"}
    assert (
        log_in("/api/auth/token/", "x", HTTP_X_FORWARDED_FOR="198.51.100.7", **behind).status_code
        == 429
    )
    # Alice's username has 3 failures of its 5; another client behind the proxy is not blocked.
    assert (
        log_in("/api/auth/token/", RIGHT, HTTP_X_FORWARDED_FOR="198.51.100.8", **behind).status_code
        == 200
    )


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("", 0),
        ("0", 0),
        ("2", 2),
        ("10.0.0.0/8, 172.16.0.0/12", (ip_network("10.0.0.0/8"), ip_network("172.16.0.0/12"))),
        ("192.0.2.1,fd00::/8", (ip_network("192.0.2.1/32"), ip_network("fd00::/8"))),
    ],
)
def test_the_trusted_proxy_setting_is_a_count_or_networks(monkeypatch, raw, parsed):
    monkeypatch.setenv("LABELLOOP_TRUSTED_PROXIES", raw)
    assert env_trusted_proxies("LABELLOOP_TRUSTED_PROXIES") == parsed


@pytest.mark.parametrize("raw", ["-1", "ten", "10.0.0.0/33", "10.0.0.1/8", "*"])
def test_a_bad_trusted_proxy_setting_stops_start_up_naming_it(monkeypatch, raw):
    monkeypatch.setenv("LABELLOOP_TRUSTED_PROXIES", raw)
    with pytest.raises(ImproperlyConfigured, match="LABELLOOP_TRUSTED_PROXIES"):
        env_trusted_proxies("LABELLOOP_TRUSTED_PROXIES")
