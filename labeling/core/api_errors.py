"""One exception handler: every API error has the body
``{"error": {"code": "...", "message": "...", "details": ...}}``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from labeling.core.errors import ServiceError

logger = logging.getLogger(__name__)
# Seconds a client should wait before retrying when the database did not answer.
DATABASE_RETRY_AFTER = 2


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(item) for item in detail)
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, SuspiciousOperation):
        # Django's request limits (raised while DRF parses the body): the client's fault, and
        # worth a clear JSON answer instead of Django's HTML 400 page.
        code, status_code, message = _suspicious(exc)
        return Response(error_body(code, message), status=status_code)
    if isinstance(exc, (OperationalError, InterfaceError)):
        # The database is restarting, failing over or unreachable: a transient condition,
        # so 503 with Retry-After, and the client retries (with the same client_id for labels).
        logger.warning("database unavailable: %s", exc)
        response = Response(
            error_body(
                "database_unavailable",
                "the database did not answer; nothing was changed, retry shortly",
            ),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response["Retry-After"] = str(DATABASE_RETRY_AFTER)
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # an unexpected error: Django's 500 handler logs it
    if isinstance(exc, exceptions.ValidationError):
        code, message, details = "invalid", _flatten(exc.detail), exc.detail
    else:
        detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
        code = getattr(detail, "code", None) or getattr(exc, "default_code", "error")
        message, details = str(detail), None
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            details = {"retry_after_seconds": int(exc.wait)}
    response.data = error_body(str(code), message, details)
    return response


def _suspicious(exc: SuspiciousOperation) -> tuple[str, int, str]:
    if isinstance(exc, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        return "too_large", 413, f"the request body is over the {limit:,} byte limit"
    if isinstance(exc, TooManyFilesSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FILES
        return "too_many_files", 413, f"more than {limit:,} files in one request"
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return "too_many_fields", 400, f"more than {limit:,} fields in one request"
    return "bad_request", 400, "the request was refused as malformed or unsafe"


def json_400(request, exception=None) -> JsonResponse:
    """Django's own 400s (outside DRF), e.g. a limit hit while middleware reads the body."""
    if isinstance(exception, SuspiciousOperation):
        code, status_code, message = _suspicious(exception)
    else:
        code, status_code, message = "bad_request", 400, "bad request"
    return JsonResponse(error_body(code, message), status=status_code)


def json_404(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", f"no such endpoint: {request.path}"), status=404)


def json_500(request) -> JsonResponse:
    return JsonResponse(
        error_body("server_error", "internal error; it has been logged"),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
