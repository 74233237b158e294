"""Who the client is, and how many failed logins and bad tokens it may send.

Failures are counted, successes are not, each in a window (DRF's rate syntax, in
``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``, read when counted so a changed setting applies):

- ``auth``: failed logins per client address (``LABELLOOP_THROTTLE_AUTH``);
- ``auth_username``: failed logins per username, from any address
  (``LABELLOOP_THROTTLE_AUTH_USERNAME``): a botnet with an address per guess still runs out;
- ``bad_token``: failed token authentications per client address
  (``LABELLOOP_THROTTLE_BAD_TOKEN``).

A login is refused while its address or its username is over the limit, even with the right
password, so the throttle is no oracle. The counts live in Django's cache, which settings.py
points at PostgreSQL so every web process and replica shares them.

The client address is REMOTE_ADDR unless ``LABELLOOP_TRUSTED_PROXIES`` says which proxies'
X-Forwarded-For entries to believe; an X-Forwarded-For that no trusted proxy wrote is ignored
(DRF's default, ``NUM_PROXIES = None``, takes it whole, which let a client pick a new identity
per request). Tested by tests/labeling/core/test_throttles.py.
"""

from __future__ import annotations

import hashlib
from ipaddress import ip_address
from typing import Any

from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

# Longest client address kept in a cache key (an IPv6 address with a zone is under 64).
_MAX_ADDRESS = 64


def client_address(request: Any) -> str:
    """The address of the client, as far as the trusted proxies vouch for it."""
    remote = str(request.META.get("REMOTE_ADDR") or "")
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    trusted = settings.LABELLOOP_TRUSTED_PROXIES
    if not forwarded or trusted == 0:
        return remote[:_MAX_ADDRESS]
    hops = [hop.strip() for hop in forwarded.split(",")]
    if isinstance(trusted, int):
        # DRF's rule for NUM_PROXIES: each of the N proxies appended the address it saw.
        return hops[-min(trusted, len(hops))][:_MAX_ADDRESS]
    chain = [*hops, remote]
    while len(chain) > 1 and _in(chain[-1], trusted):
        chain.pop()
    return chain[-1][:_MAX_ADDRESS]


def _in(address: str, networks: tuple) -> bool:
    try:
        parsed = ip_address(address)
    except ValueError:
        return False  # not an address at all: no trusted proxy wrote it
    return any(parsed in network for network in networks)


class FailureCount(SimpleRateThrottle):
    """DRF's sliding window, counting only what ``record()`` is told: ``blocked()`` before an
    attempt, ``record()`` after a failure, ``wait()`` (seconds) while blocked."""

    def __init__(self, *, scope: str, ident: str) -> None:
        self.scope = scope
        self.rate = api_settings.DEFAULT_THROTTLE_RATES[scope]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        self.key = self.cache_format % {"scope": scope, "ident": ident}
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]

    def blocked(self) -> bool:
        return len(self.history) >= self.num_requests

    def record(self) -> None:
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


def login_failures(*, request: Any, username: str | None) -> list[FailureCount]:
    """The counts a login attempt is judged by: its address's (when there is a request) and
    its username's. The username is hashed: cache keys stay short and printable."""
    counts = []
    if request is not None:
        counts.append(FailureCount(scope="auth", ident=client_address(request)))
    if username:
        digest = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
        counts.append(FailureCount(scope="auth_username", ident=digest))
    return counts


def bad_tokens(request: Any) -> FailureCount:
    return FailureCount(scope="bad_token", ident=client_address(request))


class LoginThrottle(BaseThrottle):
    """For the login views (``POST /api/auth/token/``, ``/api/auth/login/``): 429 with
    Retry-After while the address or the username has too many failures. The failures are
    recorded by the authentication backend (labeling/core/authentication.py), which every
    login path goes through, the Django admin's included."""

    def allow_request(self, request, view) -> bool:
        data = request.data
        username = data.get("username") if hasattr(data, "get") else None
        counts = login_failures(request=request, username=str(username or "") or None)
        self.waits = [count.wait() or 0.0 for count in counts if count.blocked()]
        return not self.waits

    def wait(self) -> float:
        return max(self.waits)
