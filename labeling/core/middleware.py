"""Two middlewares that run before anything else reads a request.

``ApiJsonMiddleware`` (first in ``MIDDLEWARE``): every answer under ``/api/`` is JSON with
the error body, whatever the path, method, slash or Host, DEBUG on or off:

- a foreign ``Host`` (not in ``LABELLOOP_ALLOWED_HOSTS``) is a 400 ``bad_host``, where Django
  answers its HTML page;
- a path without its trailing slash is a 308 to the slashed path (method and body kept, so
  a client that follows it gets its request carried out), where Django's APPEND_SLASH answers
  a 301 that turns POST into GET, or in DEBUG a RuntimeError (500) for POST and PATCH;
- any other answer of 300 or more that is not JSON (a 404 from the URL resolver, DEBUG's
  technical 404 and 500 pages, a redirect) is replaced by the error body with the same status
  and headers. The exception behind a 500 is logged by Django before this sees the answer.

Answers of 2xx are left as they are: image bytes, exports, the schema and the docs page.

``RequestSizeLimitMiddleware``: refuse an oversized request before anything reads its body.

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
never touch a refused body.

Tested by tests/labeling/core/test_middleware.py, test_routes.py and test_hardening.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse, HttpResponsePermanentRedirect, JsonResponse
from django.urls import is_valid_path

from labeling.core.api_errors import error_body

# The error code of each status a non-JSON answer can have; others get "error".
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
    503: "unavailable",
}
# Headers that describe the body being replaced, not the answer.
_BODY_HEADERS = {"content-type", "content-length", "content-disposition", "content-encoding"}


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def is_json(response: HttpResponse) -> bool:
    media_type = response.get("Content-Type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class ApiJsonMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not is_api(request.path_info):
            return self.get_response(request)
        try:
            request.get_host()
        except DisallowedHost:
            host = request.META.get("HTTP_HOST", "")[:200]
            return JsonResponse(
                error_body(
                    "bad_host",
                    "the Host header names a host this server does not answer to",
                    {"host": host},
                ),
                status=400,
            )
        if not request.path_info.endswith("/"):
            urlconf = getattr(request, "urlconf", None)
            if is_valid_path(request.path_info + "/", urlconf):
                return self.slash_redirect(request)
        response = self.get_response(request)
        if response.status_code < 300 or response.status_code == 304 or is_json(response):
            return response
        return self.as_json(request, response)

    @staticmethod
    def slash_redirect(request: HttpRequest) -> HttpResponsePermanentRedirect:
        location = request.get_full_path(force_append_slash=True)
        body = error_body(
            "trailing_slash",
            f"API paths end with a slash: {request.method} {request.path}/ (this answer is a "
            "permanent redirect there that keeps the method and the body)",
            {"location": location},
        )
        # preserve_request: 308, not 301, which clients follow as a GET.
        return HttpResponsePermanentRedirect(
            location,
            preserve_request=True,
            content=json.dumps(body),
            content_type="application/json",
        )

    @staticmethod
    def as_json(request: HttpRequest, response: HttpResponse) -> JsonResponse:
        status = response.status_code
        if status == 404:
            message = f"no such endpoint: {request.path}"
        elif status >= 500:
            message = "internal error; it has been logged"
        else:
            try:
                message = HTTPStatus(status).phrase.lower()
            except ValueError:  # a status HTTP does not name
                message = "error"
        replaced = JsonResponse(
            error_body(STATUS_CODES.get(status, "error"), message),
            status=status,
        )
        for header, value in response.items():
            if header.lower() not in _BODY_HEADERS:
                replaced[header] = value
        replaced.cookies = response.cookies
        return replaced


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
