"""A new password revokes the user's API token.

Django calls ``password_changed()`` on every entry of ``AUTH_PASSWORD_VALIDATORS`` when a
user is saved after ``set_password()``: the Django admin's password form, ``manage.py
changepassword``, a password reset, and any script that sets a password all end there, so
this is the one place that sees them all. It validates nothing. Sessions need no such hook:
Django's session hash already ends the other sessions of a user whose password changed.
"""

from __future__ import annotations

from labeling.core.services import token_revoke


class RevokeTokensOnPasswordChange:
    def validate(self, password: str, user=None) -> None:
        return None

    def password_changed(self, password: str, user=None) -> None:
        if user is not None and user.pk is not None:
            token_revoke(user=user)

    def get_help_text(self) -> str:
        return "Changing the password revokes your API token: get a new one afterwards."
