"""How callers prove who they are: passwords (every login path) and API tokens.

- ``ThrottledModelBackend`` (``AUTHENTICATION_BACKENDS``): Django's password check, refused
  while the address or the username has too many failed logins, and counting each failure.
  The API's login views, the token exchange and the Django admin's login form all go through
  it, so no path escapes the throttle.
- ``TokenAuthentication`` (``REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]``): DRF's
  ``Authorization: Token <key>``, plus an optional lifetime (``LABELLOOP_TOKEN_TTL_HOURS``)
  and a throttle on failures: past ``bad_token`` failures from one address, 429 with
  Retry-After instead of 401. A valid token is never refused by that throttle: keys are 160
  random bits, so the throttle is there to stop a client hammering with a bad one, not
  guessing, and a client behind the same NAT with a good token is not held back.

Tested by tests/labeling/core/test_throttles.py and tests/labeling/core/test_tokens.py.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.core.exceptions import PermissionDenied
from django.utils import timezone
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from labeling.core.throttles import bad_tokens, login_failures


class ThrottledModelBackend(ModelBackend):
    def authenticate(self, request: Any, username: str | None = None, password=None, **kwargs):
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None  # not a password login: nothing to count (ModelBackend's answer too)
        counts = login_failures(request=request, username=username)
        if any(count.blocked() for count in counts):
            # Django's authenticate() stops at PermissionDenied: no other backend is asked.
            raise PermissionDenied("too many failed logins")
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None:
            for count in counts:
                count.record()
        return user


def token_expired(token: Token) -> bool:
    hours = settings.LABELLOOP_TOKEN_TTL_HOURS
    return hours > 0 and token.created < timezone.now() - timedelta(hours=hours)


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate(self, request):
        try:
            return super().authenticate(request)
        except exceptions.AuthenticationFailed:
            failures = bad_tokens(request)
            if failures.blocked():
                raise exceptions.Throttled(wait=failures.wait()) from None
            failures.record()
            raise

    def authenticate_credentials(self, key: str):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            hours = settings.LABELLOOP_TOKEN_TTL_HOURS
            raise exceptions.AuthenticationFailed(
                f"the token is older than its lifetime of {hours} hour{'s' if hours != 1 else ''}; "
                "get a new one from "
                "POST /api/auth/token/",
                code="token_expired",
            )
        return user, token
