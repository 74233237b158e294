"""The one error type that services raise, and its mapping to the JSON error body.

Services and models never import ``rest_framework``; ``labeling.core.api_errors`` turns a
``ServiceError`` (and DRF's own exceptions) into
``{"error": {"code": ..., "message": ..., "details": ...}}``.
"""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """A request that cannot be carried out, with an HTTP-ish status for the API layer."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.details = details


class ValidationFailed(ServiceError):
    status = 400
    code = "invalid"


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class PermissionDenied(ServiceError):
    status = 403
    code = "permission_denied"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "too_large"


class Unavailable(ServiceError):
    """Something the request needs is down (the image store, say); worth retrying later."""

    status = 503
    code = "unavailable"
