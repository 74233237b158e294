"""Schemathesis over every operation in ``/api/schema/``: no 5xx, every response as declared,
every answer that is not a success JSON with the error body; then each operation with a JSON
body nested 1,000 deep and at its path without the trailing slash.

Run: ``LABELLOOP_DATA_DIR=var/test-security .venv/bin/python -m pytest
tests/labeling/core/test_api_fuzz.py -q`` (about a minute on 2 cores).

The requests go through Django's real WSGI application (middleware, auth, DRF, the real
PostgreSQL) in this process. Each generated case runs inside a savepoint that is rolled back
afterwards, so a generated ``DELETE /api/projects/{id}/`` does not leave the next case with
nothing to hit. Path ids are drawn from the real objects plus one that does not exist, so the
fuzzer reaches the views' bodies, not only their 404s.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from contextlib import contextmanager

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from labeling.annotations.models import Annotation, LabelReview
from labeling.core.storage import storage_put
from labeling.images.models import ImageStatus
from labeling.learning.models import ModelVersion, RunStatus, TrainingRun
from labeling.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery, WebhookEvent
from tests.factories import ImageFactory, UserFactory

pytestmark = pytest.mark.django_db

MISSING_ID = 987_654_321
# What the outside probe sent: 1,000 levels, past Python's recursion limit. Raw bytes, since
# schemathesis would serialise a Python list with json.dumps, which cannot nest that deep.
DEEP_JSON = b"[" * 1000 + b"]" * 1000
# Generated cases per operation and generation mode (valid data, then invalid data).
EXAMPLES = 20
# Path parameter name -> which fixture object its real id comes from.
ID_PARAMS = {
    "project_id": "project",
    "image_id": "image",
    "run_id": "run",
    "version_id": "version",
    "webhook_id": "webhook",
    "delivery_id": "delivery",
    "review_id": "review",
}


@schemathesis.check
def error_answers_are_json_with_the_error_body(ctx, response, case) -> None:
    """Every answer of 300 or more is JSON with {"error": {"code", "message", "details"}}
    (successes may be image bytes, a CSV or the schema, as each operation declares)."""
    if response.status_code < 300:
        return
    media_type = response.headers.get("content-type", [""])[0].split(";")[0]
    if media_type != "application/json":
        raise Failure(
            operation=case.operation.label,
            title="A non-JSON answer under /api/",
            message=f"{response.status_code} {media_type or 'without a Content-Type'}",
        )
    error = response.json().get("error") if isinstance(response.json(), dict) else None
    if not isinstance(error, dict) or set(error) != {"code", "message", "details"}:
        raise Failure(
            operation=case.operation.label,
            title="An answer without the error body",
            message=f"{response.status_code}: {response.text[:200]}",
        )


@pytest.fixture
def fuzz_world(project, alice, bob, staff, settings):
    """A project with images (one labeled, its label in the review queue), a queued run, a
    finished run with an active model version (checkpoint in the store), a webhook, and API
    tokens for alice and staff."""
    # Nobody answers predictions here: fail fast with the declared 503.
    settings.LABELLOOP_PREDICT_TIMEOUT = 0.05
    UserFactory(username="newcomer")
    images = [ImageFactory(project=project) for _ in range(3)]
    labeled = images[1]
    Annotation.objects.create(image=labeled, annotator=bob, label="3", client_id=uuid.uuid4())
    labeled.status, labeled.consensus_label, labeled.agreement = ImageStatus.LABELED, "3", 1.0
    labeled.annotation_count = 1
    labeled.save()
    review = LabelReview.objects.create(
        project=project,
        image=labeled,
        score=0.9,
        given_label="3",
        model_label="5",
        model_confidence=0.8,
    )
    done = TrainingRun.objects.create(project=project, trigger="manual", status=RunStatus.SUCCEEDED)
    checkpoint = b"not really a checkpoint"
    key = f"models/{hashlib.sha256(checkpoint).hexdigest()}.pt"
    storage_put(key=key, data=checkpoint)
    version = ModelVersion.objects.create(
        project=project,
        run=done,
        number=1,
        checkpoint_key=key,
        architecture="seed_cnn",
        labels_used=1,
        is_active=True,
    )
    queued = TrainingRun.objects.create(project=project, trigger="manual")
    # Made directly: the service would resolve the host name, and this machine has no DNS.
    webhook = Webhook.objects.create(
        project=project,
        url="https://hooks.example.com/labelloop",
        events=list(WebhookEvent.values),
        secret="s" * 32,
        created_by=alice,
    )
    failed = WebhookDelivery.objects.create(
        webhook=webhook,
        event=WebhookEvent.RUN_FAILED,
        payload={"event": "run.failed"},
        status=DeliveryStatus.FAILED,
        attempts=8,
        next_attempt_at=timezone.now(),
    )
    return {
        "ids": {
            "project": project.id,
            "image": images[0].id,
            "run": queued.id,
            "version": version.id,
            "webhook": webhook.id,
            "delivery": failed.id,
            "review": review.id,
        },
        "tokens": {
            "staff": Token.objects.create(user=staff).key,
            "admin": Token.objects.create(user=alice).key,
        },
    }


@contextmanager
def _one_connection_per_test():
    """Django's per-request connection recycling off: the test's transaction lives on this
    thread's connection, as Django's own test client arranges it (which is also why the
    schema is fetched before this, with the test client, that reconnects them on exit)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _pin_path_ids(raw: dict, ids: dict[str, int]) -> dict:
    """Valid ids are the real objects' and one missing id (a copy: the raw schema is kept)."""
    pinned = copy.deepcopy(raw)
    for item in pinned["paths"].values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") != "path":
                    continue
                source = ID_PARAMS.get(parameter["name"])
                assert source is not None, f"add path parameter {parameter['name']} to ID_PARAMS"
                parameter["schema"] = {"type": "integer", "enum": [ids[source], MISSING_ID]}
    return pinned


def _operations(raw: dict, app) -> dict[str, object]:
    loaded = schemathesis.openapi.from_dict(raw)
    loaded.app = app
    return {op.label: op for op in (result.ok() for result in loaded.get_all_operations())}


def _excluded_checks(case) -> list:
    # A 400 for schema-valid data is right where a business rule decides (the label must be
    # one of the project's classes, the password must match, a manifest must be UTF-8): the
    # schema cannot express those, and the 400 names the problem.
    excluded = [positive_data_acceptance]
    if case.operation.path.endswith("/predict/"):
        # Predictions are answered by a worker; there is none here, so the declared 503 is
        # the right answer. Any other 5xx is still caught: it is undeclared.
        excluded.append(not_a_server_error)
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.QUERY):
        # DRF and django-filter read query strings like HTML forms: an empty filter means
        # "no filter" and a bad page_size falls back to the default page. Invalid bodies and
        # path ids must still be rejected.
        excluded.append(negative_data_rejection)
    elif _empty_form_value(case) or _typed_form_value(case):
        # The wire carries another form than the case describes. Werkzeug (the WSGI test
        # transport) writes an empty multipart value without the CRLF that ends it (the empty
        # item and its delimiter run together): an empty label, say, never reaches the API,
        # which refuses it when it does (tests/labeling/projects). And a form has no types:
        # a "number" where the schema says string goes out as the string "-0.99999", a valid
        # class name (JSON numbers are refused: tests/labeling/projects). Judge such cases
        # by status and schema only.
        excluded.append(negative_data_rejection)
    return excluded


def _form_values(case) -> list:
    """The values of a multipart case's body; [] for any other case."""
    if not (case.media_type or "").startswith("multipart/") or not isinstance(case.body, dict):
        return []
    return [
        v for value in case.body.values() for v in (value if isinstance(value, list) else [value])
    ]


def _empty_form_value(case) -> bool:
    return any(v == "" for v in _form_values(case))


def _typed_form_value(case) -> bool:
    return any(isinstance(v, int | float) for v in _form_values(case))


def _fuzz(operation, mode: GenerationMode, tokens: list[str], path_ids: dict | None) -> str | None:
    """Run one operation's generated cases; the failure report, or None when all passed."""

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases every run: a failure here is reproducible
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=operation.as_strategy(mode, path_parameters=path_ids))
    def run(case) -> None:
        # Each case as a staff user, then as the project's admin (alice), from the same state.
        for token in tokens:
            savepoint = transaction.savepoint()
            try:
                case.call_and_validate(
                    headers={"Authorization": f"Token {token}"},
                    excluded_checks=_excluded_checks(case),
                )
            finally:
                transaction.savepoint_rollback(savepoint)

    try:
        run()
    except Unsatisfiable:
        if mode == GenerationMode.NEGATIVE:
            return None  # no invalid input exists for it (no parameters, no body)
        return f"{operation.label} ({mode}): no valid input could be generated"
    except (Exception, BaseExceptionGroup) as exc:  # a failed check (a group): report it
        return f"{operation.label} ({mode}): {exc}"
    return None


def test_every_operation_answers_as_its_schema_declares(fuzz_world):
    raw = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    app = WSGIHandler()
    ids = fuzz_world["ids"]
    # Valid data: ids drawn from the real objects and a missing one. Invalid data: the real
    # objects' ids, so the invalid part (body, query) reaches the view's validation.
    pinned = _operations(_pin_path_ids(raw, ids), app)
    plain = _operations(raw, app)
    assert len(pinned) >= 30, sorted(pinned)
    tokens = list(fuzz_world["tokens"].values())
    failures = []
    with _one_connection_per_test():
        for label, operation in pinned.items():
            failures.append(_fuzz(operation, GenerationMode.POSITIVE, tokens, None))
            real = {
                name: ids[source]
                for name, source in ID_PARAMS.items()
                if "{" + name + "}" in plain[label].path
            }
            failures.append(_fuzz(plain[label], GenerationMode.NEGATIVE, tokens, real or None))
    failures = [f for f in failures if f is not None]
    assert not failures, "\n\n".join(failures)


def _probe_cases(operation, ids: dict[str, int]) -> list:
    """The operation at its real ids: with a body nested 1,000 deep (when it takes JSON), and
    at its path without the trailing slash."""
    real = {n: ids[source] for n, source in ID_PARAMS.items() if "{" + n + "}" in operation.path}
    cases = []
    if operation.body and any(b.media_type == "application/json" for b in operation.body):
        deep = operation.Case(path_parameters=real, body=DEEP_JSON, media_type="application/json")
        cases.append(deep)
    bare = operation.Case(path_parameters=real)
    bare.path = bare.path.rstrip("/")
    cases.append(bare)
    return cases


def test_deep_json_and_missing_slashes_get_no_5xx_and_only_json(fuzz_world):
    raw = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operations = _operations(raw, WSGIHandler())
    failures, deep_refused, redirected = [], set(), set()
    checks = [not_a_server_error, error_answers_are_json_with_the_error_body]
    with _one_connection_per_test():
        for label, operation in operations.items():
            for case in _probe_cases(operation, fuzz_world["ids"]):
                for token in fuzz_world["tokens"].values():
                    savepoint = transaction.savepoint()
                    try:
                        response = case.call(headers={"Authorization": f"Token {token}"})
                        case.validate_response(response, checks=checks)
                    except (Exception, BaseExceptionGroup) as exc:  # a failed check: report it
                        failures.append(f"{label} at {case.formatted_path}: {exc}")
                        continue
                    finally:
                        transaction.savepoint_rollback(savepoint)
                    if b'"too_deep"' in response.content:
                        deep_refused.add(label)
                    if response.status_code == 308:
                        redirected.add(label)
    assert failures == [], "\n\n".join(failures)
    assert redirected == set(operations), sorted(set(operations) - redirected)
    # The operations that read a JSON body refused it at the parser, naming the limit.
    assert {"POST /api/annotations/", "POST /api/projects/{project_id}/tasks/next/"} <= deep_refused
