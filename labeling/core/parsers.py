"""The one JSON parser of every API view, with a depth and a size limit.

Python's json module recurses once per level of nesting, so a body like ``[[[[...]]]]`` 1,000
deep raised RecursionError: a 500 for anyone, no login needed. Here that is a 400 naming the
limit, and so is anything nested past ``MAX_JSON_DEPTH`` that did parse (the code that reads
the data, serializers and renderers, recurses too). The body is read at most
``DATA_UPLOAD_MAX_MEMORY_SIZE`` (``LABELLOOP_MAX_REQUEST_BYTES``) bytes far:
labeling/core/middleware.py refuses a bigger Content-Length before the view runs, and this
refuses whatever got past it (413). Upload manifests use ``json_loads_limited`` too.

Listed in ``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``; views that pin their parsers import
``JSONParser`` from here. Tested by tests/labeling/core/test_parsers.py.
"""

from __future__ import annotations

import json as stdlib_json
from typing import Any

from django.conf import settings
from rest_framework import parsers
from rest_framework.exceptions import ParseError
from rest_framework.utils import json

from labeling.core.errors import PayloadTooLarge, ValidationFailed

# Levels of arrays and objects: the API's deepest body has 3; 32 leaves room for nested
# settings while staying far below Python's recursion limit (1,000) in parsing and rendering.
MAX_JSON_DEPTH = 32
# What json.loads builds that nests: the only types json_depth looks into.
_CONTAINERS = (list, dict)


def json_depth(data: Any) -> int:
    """How many levels of lists and dicts ``data`` nests, counted level by level (no
    recursion); linear in the number of values (about a third of json.loads' own time)."""
    depth, level = 0, [data] if isinstance(data, _CONTAINERS) else []
    while level:
        depth += 1
        children: list = []
        add = children.append
        for container in level:
            for value in container.values() if type(container) is dict else container:
                if isinstance(value, _CONTAINERS):
                    add(value)
        level = children
    return depth


def json_loads_limited(text: str, *, what: str = "the JSON body", strict: bool = True) -> Any:
    """``json.loads``, refusing more than MAX_JSON_DEPTH levels (ValidationFailed, a 400
    ``too_deep``). Invalid JSON raises ValueError as json.loads does; ``strict`` refuses NaN
    and Infinity, as DRF does."""
    try:
        # Fewer brackets than the limit cannot nest past it: no need to measure.
        if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
            return json.loads(text) if strict else stdlib_json.loads(text)
        data = json.loads(text) if strict else stdlib_json.loads(text)
    except RecursionError:
        # The parser gave up near Python's recursion limit: far past ours.
        data = None
    else:
        if json_depth(data) <= MAX_JSON_DEPTH:
            return data
    raise ValidationFailed(
        f"{what} is nested deeper than the limit of {MAX_JSON_DEPTH} levels of arrays and objects",
        code="too_deep",
        details={"limit": MAX_JSON_DEPTH},
    )


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise PayloadTooLarge(
                f"the request body is over the {limit:,} byte limit",
                details={"limit_bytes": limit},
            )
        try:
            text = raw.decode(parsers.get_encoding(parser_context or {}))
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
        try:
            return json_loads_limited(text)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
