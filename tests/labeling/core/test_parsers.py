"""The JSON parser every API view uses: bodies nested too deep or too large are a 400 / 413
that names the limit, never a RecursionError.

Run: ``.venv/bin/python -m pytest tests/labeling/core/test_parsers.py -q``
"""

from __future__ import annotations

import io
import json

import pytest
from rest_framework.parsers import JSONParser as DRFJSONParser
from rest_framework.test import APIClient

from labeling.core.errors import PayloadTooLarge, ValidationFailed
from labeling.core.parsers import MAX_JSON_DEPTH, JSONParser, json_depth, json_loads_limited
from labeling.urls import urlpatterns

pytestmark = pytest.mark.django_db

DEEP = "[" * 1000 + "]" * 1000


def nested(depth: int) -> str:
    return '{"a": ' * (depth - 1) + "[1]" + "}" * (depth - 1)


def assert_too_deep(response) -> None:
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "too_deep"
    assert f"deeper than the limit of {MAX_JSON_DEPTH} levels" in error["message"]
    assert error["details"] == {"limit": MAX_JSON_DEPTH}


@pytest.mark.parametrize("debug", [False, True])
def test_json_nested_1000_deep_is_a_400_for_an_anonymous_caller(settings, debug):
    settings.DEBUG = debug
    response = APIClient().post("/api/auth/token/", DEEP, content_type="application/json")
    assert_too_deep(response)


def test_json_nested_1000_deep_is_a_400_on_tasks_next_and_annotations(project, bob, as_user):
    client = as_user(bob)
    for path in (f"/api/projects/{project.id}/tasks/next/", "/api/annotations/"):
        assert_too_deep(client.post(path, DEEP, content_type="application/json"))


def test_json_at_the_depth_limit_is_parsed_and_one_deeper_is_not():
    assert json_depth(json.loads(nested(MAX_JSON_DEPTH))) == MAX_JSON_DEPTH
    json_loads_limited(nested(MAX_JSON_DEPTH))
    with pytest.raises(ValidationFailed, match=f"deeper than the limit of {MAX_JSON_DEPTH}"):
        json_loads_limited(nested(MAX_JSON_DEPTH + 1))


def test_json_past_the_limit_but_within_pythons_recursion_is_refused_too():
    with pytest.raises(ValidationFailed, match="deeper than the limit"):
        json_loads_limited("[" * 500 + "]" * 500)


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = json.dumps({"label": "[" * 5000, "escaped": '\\"[[[[', "more": ["]]]"]})
    assert json_loads_limited(text)["label"] == "[" * 5000


def test_wide_json_is_measured_without_recursion():
    wide = {"rows": [{"f": [i]} for i in range(100_000)]}
    assert json_depth(wide) == 4
    assert len(json_loads_limited(json.dumps(wide))["rows"]) == 100_000


def test_a_body_over_the_size_limit_is_refused_while_it_is_read(settings):
    """Without a Content-Length header the middleware cannot see the size; the parser can."""
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    body = io.BytesIO(json.dumps({"label": "x" * 200}).encode())
    with pytest.raises(PayloadTooLarge, match="100 byte limit"):
        JSONParser().parse(body, "application/json", {})


def test_invalid_json_is_still_the_plain_parse_error(project, bob, as_user):
    response = as_user(bob).post("/api/annotations/", "{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parse_error"


def test_every_api_view_parses_json_with_the_limited_parser():
    def views(patterns):
        for pattern in patterns:
            if hasattr(pattern, "url_patterns"):
                yield from views(pattern.url_patterns)
            elif getattr(pattern.callback, "view_class", None) is not None:
                yield pattern.callback.view_class

    plain = [
        view.__name__
        for view in views(urlpatterns)
        for parser in getattr(view, "parser_classes", [])
        if issubclass(parser, DRFJSONParser) and not issubclass(parser, JSONParser)
    ]
    assert plain == []
