"""The OpenAPI schema's error responses: every operation declares the statuses it can answer.

``DEFAULT_SCHEMA_CLASS`` in settings points here. Each operation gets the JSON error body
(``{"error": {"code", "message", "details"}}``) under every status the shared machinery can
produce for it, so a client generated from ``/api/schema/`` knows them all:

- 400 bad input, 403 (role or CSRF) everywhere; 401 where authentication is required;
- 404 where the path names an object or the list is cursor-paginated (a bad cursor is a 404);
- 413 and 415 where a request body is accepted (size limits; an unsupported Content-Type);
- 429 where a throttle applies: the login views, and every view that takes a token (too
  many bad tokens from one address).

Statuses that only one service raises (409 conflicts, 503 without a worker) are declared by
the view itself in ``extend_schema(responses={...: ErrorSerializer})``.

Check it with ``python manage.py spectacular --validate --file /tmp/schema.yml``.
"""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable, e.g. not_found, lease_lost")
    message = serializers.CharField(help_text="for people: says what was wrong")
    details = serializers.JSONField(allow_null=True, help_text="field errors or extra facts")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


_DESCRIPTIONS = {
    "400": "The request is invalid; the message names the problem.",
    "401": "Not authenticated: send a session cookie or `Authorization: Token <key>`.",
    "403": "Authenticated, but your role does not allow this (or the CSRF token is missing).",
    "404": "No such object, or not in a project you belong to.",
    "409": "The request conflicts with the current state of the object.",
    "413": "The request body is too large (bytes or number of files).",
    "415": "The request body's Content-Type is not one this operation accepts.",
    "429": "Too many failed logins or bad tokens; `details.retry_after_seconds` (and the "
    "`Retry-After` header) say when to retry.",
    "503": "A service the request needs is not available right now.",
}

_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class LabelLoopAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_codes():
            if code not in responses:
                body = self._get_response_for_code(ErrorSerializer, code, direction=direction)
                body["description"] = _DESCRIPTIONS[code]
                responses[code] = body
        return dict(sorted(responses.items()))

    def _error_codes(self) -> list[str]:
        view = self.view
        codes = ["400", "403"]
        if not any(p is AllowAny for p in getattr(view, "permission_classes", [])):
            codes.append("401")
        if "{" in self.path or getattr(view, "pagination_class", None) is not None:
            codes.append("404")
        if self.method in _BODY_METHODS:
            codes += ["413", "415"]
        if getattr(view, "throttle_classes", None) or getattr(view, "authentication_classes", None):
            codes.append("429")
        return codes
