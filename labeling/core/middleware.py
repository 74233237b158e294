"""Refuse an oversized request before anything reads its body.

Two limits, by what the body is:

- a multipart upload (files, zips): ``LABELLOOP_MAX_UPLOAD_BYTES`` for the whole request.
  Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` does not count file parts; without this, any size
  would be streamed to temporary files on disk before the view saw one byte;
- any other body (JSON, forms): ``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``LABELLOOP_MAX_REQUEST_BYTES``).
  Django enforces it only when *it* reads the body; DRF's JSON parser reads the stream
  itself and would otherwise load a body of any size into memory.

Without a Content-Length header (chunked encoding) Django reads no body at all, so the header
is what there is to check. Listed in ``MIDDLEWARE`` (settings.py) right after
SecurityMiddleware (whose headers the 413 still gets), so the session and CSRF middleware
never touch a refused body. Tested by tests/labeling/core/test_hardening.py.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from labeling.core.api_errors import error_body


def body_limit(content_type: str) -> int:
    if content_type.lower().startswith("multipart/"):
        return settings.LABELLOOP_MAX_UPLOAD_BYTES
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class RequestSizeLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(
                error_body("bad_request", "the Content-Length header is not a number"),
                status=400,
            )
        content_type = request.META.get("CONTENT_TYPE", "")
        limit = body_limit(content_type)
        if length > limit:
            hint = "; send the files in several requests" if "multipart" in content_type else ""
            return JsonResponse(
                error_body(
                    "too_large",
                    f"the request body is {length:,} bytes, over the {limit:,} byte limit{hint}",
                    {"limit_bytes": limit, "request_bytes": length},
                ),
                status=413,
            )
        return self.get_response(request)
