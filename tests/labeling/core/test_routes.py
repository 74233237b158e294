"""Every route in ``labeling/urls.py``, with each variant an outside probe tried: no trailing
slash, ``Accept: text/html``, ``?format=api``, a foreign ``Host``, the unrouted paths next to
it, and a JSON body nested 1,000 deep. Every answer is under 500 and JSON, with the error body
whenever it is not a success; DEBUG off (production) and on (``make demo``), anonymous and as
a staff user with a real token.

The routes are read from the URL conf, not listed here: a new endpoint is walked as soon as
it exists. Each request runs in a savepoint that is rolled back, so a DELETE does not leave
the next request with nothing to hit.

Run: ``.venv/bin/python -m pytest tests/labeling/core/test_routes.py -q``
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import transaction
from django.urls import get_resolver
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.annotations.models import LabelReview
from labeling.learning.models import ModelVersion, TrainingRun
from labeling.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent
from tests.factories import ImageFactory

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
BODY_METHODS = {"post", "put", "patch", "delete"}
DEEP = "[" * 1000 + "]" * 1000
# Routes whose success is not JSON, and what it is instead. Their errors are JSON all the same.
NOT_JSON_ON_SUCCESS = {
    "image-file": "the image's own bytes",
    "schema": "the OpenAPI description (YAML by default)",
    "api-docs": "the Swagger UI page",
}


@dataclass(frozen=True)
class Route:
    name: str
    template: str  # "api/projects/<int:project_id>/"
    methods: tuple[str, ...]

    def path(self, ids: dict[str, int | str]) -> str:
        filled = re.sub(r"<int:(\w+)>", lambda m: str(ids[m.group(1)]), self.template)
        assert "<" not in filled, f"give {self.template} a value for each of its converters"
        return "/" + filled


def api_routes() -> list[Route]:
    found: list[Route] = []

    def walk(patterns, prefix: str) -> None:
        for pattern in patterns:
            template = prefix + str(pattern.pattern)
            if hasattr(pattern, "url_patterns"):
                walk(pattern.url_patterns, template)
            elif template.startswith("api/"):
                view = pattern.callback.view_class
                methods = tuple(m for m in METHODS if hasattr(view, m))
                found.append(Route(pattern.name, template, methods))

    walk(get_resolver("labeling.urls").url_patterns, "")
    return found


ROUTES = api_routes()


@pytest.fixture
def ids(project, staff) -> dict[str, int]:
    run = TrainingRun.objects.create(project=project, trigger="manual")
    done = TrainingRun.objects.create(project=project, trigger="manual", status="succeeded")
    version = ModelVersion.objects.create(
        project=project,
        run=done,
        number=1,
        checkpoint_key="k",
        architecture="seed_cnn",
        labels_used=10,
    )
    webhook = Webhook.objects.create(
        project=project,
        url="https://93.184.216.34/hook",
        events=list(WebhookEvent.values),
        secret="s" * 32,
    )
    delivery = WebhookDelivery.objects.create(
        webhook=webhook,
        event=WebhookEvent.RUN_FAILED,
        payload={"event": "run.failed"},
        status=DeliveryStatus.FAILED,
        attempts=8,
        next_attempt_at=timezone.now(),
    )
    doubted = ImageFactory(project=project, status="labeled", consensus_label="3")
    review = LabelReview.objects.create(
        project=project,
        image=doubted,
        score=0.9,
        given_label="3",
        model_label="5",
        model_confidence=0.8,
    )
    return {
        "project_id": project.id,
        "review_id": review.id,
        "image_id": ImageFactory(project=project).id,
        "run_id": run.id,
        "version_id": version.id,
        "webhook_id": webhook.id,
        "delivery_id": delivery.id,
    }


@dataclass(frozen=True)
class Probe:
    what: str
    route: Route
    method: str
    path: str
    kwargs: dict
    expect: int | None = None  # the status it must be, when the variant decides it


def probes(route: Route, ids: dict[str, int]) -> Iterator[Probe]:
    path = route.path(ids)
    for method in route.methods:
        body = {"data": "{}", "content_type": "application/json"} if method in BODY_METHODS else {}
        yield Probe("no slash", route, method, path.rstrip("/"), body, 308)
        yield Probe("Accept: text/html", route, method, path, {**body, "HTTP_ACCEPT": "text/html"})
        yield Probe("?format=api", route, method, path + "?format=api", body)
        yield Probe("foreign Host", route, method, path, {**body, "HTTP_HOST": "evil.example"}, 400)
        if method in BODY_METHODS:
            deep = {"data": DEEP, "content_type": "application/json"}
            yield Probe("deep JSON", route, method, path, deep)
    neighbours = {path + "nope/"}
    for name in re.findall(r"<int:(\w+)>", route.template):
        for bad in ("abc", "-1", "1.5"):
            neighbours.add(route.path({**ids, name: bad}))
    for neighbour in sorted(neighbours):
        for method in ("get", "post"):
            yield Probe("unrouted neighbour", route, method, neighbour, {}, 404)


def check(probe: Probe, response) -> str | None:
    """What is wrong with the answer, or None."""
    status, content_type = response.status_code, response.get("Content-Type", "")
    if status >= 500:
        return f"{status}"
    if probe.expect is not None and status != probe.expect:
        return f"{status}, not {probe.expect}"
    if status == 204:
        return None if not response.content else "a 204 with a body"
    if status < 300 and probe.route.name in NOT_JSON_ON_SUCCESS:
        return None
    if content_type != "application/json":
        return f"{status} {content_type}"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    if status >= 300:
        error = json.loads(body).get("error")
        if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
            return f"{status} without the error body: {body[:120]!r}"
    return None


def test_the_walk_finds_every_route():
    names = {route.name for route in ROUTES}
    assert len(ROUTES) >= 30
    assert {"auth-token", "auth-login", "health", "project-detail", "image-file"} <= names


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("who", ["anonymous", "staff"])
def test_every_route_answers_every_variant_in_json_under_500(settings, ids, staff, who, debug):
    settings.DEBUG = debug
    settings.LABELLOOP_PREDICT_TIMEOUT = 0.05  # no worker here: fail fast
    client = APIClient(raise_request_exception=False)
    if who == "staff":
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    failures, too_deep = [], set()
    for route in ROUTES:
        for probe in probes(route, ids):
            savepoint = transaction.savepoint()
            try:
                response = getattr(client, probe.method)(probe.path, **probe.kwargs)
                problem = check(probe, response)
            finally:
                transaction.savepoint_rollback(savepoint)
            if problem is not None:
                failures.append(f"{probe.method.upper()} {probe.path} ({probe.what}): {problem}")
            elif probe.what == "deep JSON" and b'"too_deep"' in response.content:
                too_deep.add(route.name)
    assert failures == [], "\n".join(failures)
    # The JSON endpoints reached the parser, which named the limit.
    expected = {"auth-token"} if who == "anonymous" else {"project-detail", "annotation-create"}
    assert expected <= too_deep, too_deep
