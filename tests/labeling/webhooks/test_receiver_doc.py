"""The receiver's signature check in docs/api.md, run as written against real deliveries: it
accepts what LabelLoop sends and refuses a changed body, a wrong secret, a moved timestamp
and a replay after the tolerance."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone

from labeling.webhooks.delivery import webhook_deliver_due
from labeling.webhooks.services import webhook_ping

pytestmark = pytest.mark.django_db

DOC = Path(__file__).resolve().parents[3] / "docs" / "api.md"
MARKER = (
    "<!-- tested: tests/labeling/webhooks/test_receiver_doc.py extracts the python block below -->"
)


def doc_verify() -> dict:
    text = DOC.read_text()
    assert text.count(MARKER) == 1, f"docs/api.md must mark its receiver block once: {MARKER}"
    block = re.search(r"```python\n(.*?)\n```", text[text.index(MARKER) :], re.S)
    assert block is not None, "no ```python block after the marker"
    namespace: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)
    return namespace


def test_the_documented_check_accepts_a_delivery_and_refuses_forgeries_and_replays(hook, receiver):
    namespace = doc_verify()
    verify = namespace["verify"]
    webhook_ping(webhook=hook)
    sent_at = time.time()
    assert len(webhook_deliver_due(limit=10).delivered) == 1
    [request] = receiver.received
    headers = request.headers
    assert abs(int(headers["X-LabelLoop-Timestamp"]) - sent_at) <= 5

    assert verify(hook.secret, request.body, headers)
    assert not verify(hook.secret, request.body.replace(b"ping", b"pong"), headers)
    assert not verify("another-secret-of-some-length", request.body, headers)
    moved = {**headers, "X-LabelLoop-Timestamp": str(int(headers["X-LabelLoop-Timestamp"]) + 1)}
    assert not verify(hook.secret, request.body, moved)  # the timestamp is inside the MAC
    unsigned = {k: v for k, v in headers.items() if k != "X-LabelLoop-Timestamp"}
    assert not verify(hook.secret, request.body, unsigned)

    # The same request captured and sent again ten minutes later is refused.
    later = time.time() + namespace["TOLERANCE"] + 300
    namespace["time"] = SimpleNamespace(time=lambda: later)
    assert not verify(hook.secret, request.body, headers)


def test_a_retry_keeps_its_delivery_id_and_is_signed_again(hook, receiver):
    receiver.answer(503)
    webhook_ping(webhook=hook)
    assert len(webhook_deliver_due(limit=10).retrying) == 1
    assert (
        len(webhook_deliver_due(limit=10, now=timezone.now() + timedelta(hours=1)).delivered) == 1
    )
    first, second = receiver.received
    assert first.headers["X-LabelLoop-Delivery"] == second.headers["X-LabelLoop-Delivery"]
    assert (first.headers["X-LabelLoop-Attempt"], second.headers["X-LabelLoop-Attempt"]) == (
        "1",
        "2",
    )
    assert first.body == second.body
    assert first.signed_with(hook.secret) and second.signed_with(hook.secret)
