"""API tokens: one per user, issued by ``POST /api/auth/token/``, revoked by
``DELETE /api/auth/token/`` and by any change of the user's password
(labeling/core/passwords.py), replaced once older than ``LABELLOOP_TOKEN_TTL_HOURS``."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token

from labeling.core.authentication import token_expired


def token_issue(*, user: AbstractBaseUser) -> Token:
    """The user's token: the one they have, or a new key when they have none or it expired."""
    with transaction.atomic():
        token, created = Token.objects.select_for_update().get_or_create(user=user)
        if not created and token_expired(token):
            token.delete()
            token = Token.objects.create(user=user)
    return token


def token_revoke(*, user: AbstractBaseUser) -> int:
    """Delete the user's token, so the key stops working at once; how many were deleted."""
    deleted, _ = Token.objects.filter(user=user).delete()
    return deleted
