"""Managing webhooks through the API: who may, what is refused, the secret, the log."""

from __future__ import annotations

import pytest

from labeling.webhooks.delivery import webhook_deliver_due
from labeling.webhooks.models import Webhook, WebhookDelivery
from labeling.webhooks.services import webhook_create, webhook_ping

pytestmark = pytest.mark.django_db

ALL_EVENTS = [
    "run.succeeded",
    "run.failed",
    "model.activated",
    "image.labeled",
    "annotator.quality_low",
]
PUBLIC_URL = "https://93.184.216.34/labelloop"  # an IP literal: checked without DNS


def test_an_admin_adds_a_webhook_and_sees_its_secret_only_once(alice, as_user, project):
    client = as_user(alice)
    response = client.post(f"/api/projects/{project.pk}/webhooks/", {"url": PUBLIC_URL})
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["events"] == ALL_EVENTS and created["is_active"] is True
    assert len(created["secret"]) >= 40
    assert created["created_by"] == "alice"
    assert Webhook.objects.get(pk=created["id"]).secret == created["secret"]
    detail = client.get(f"/api/webhooks/{created['id']}/").json()
    assert "secret" not in detail and detail["url"] == PUBLIC_URL
    listed = client.get(f"/api/projects/{project.pk}/webhooks/").json()
    assert [w["id"] for w in listed] == [created["id"]] and "secret" not in listed[0]


def test_an_admin_sets_a_secret_changes_events_and_rotates_the_secret(alice, as_user, project):
    client = as_user(alice)
    own = "a-secret-of-our-own-choosing"
    created = client.post(
        f"/api/projects/{project.pk}/webhooks/",
        {"url": PUBLIC_URL, "secret": own, "events": ["run.failed", "run.succeeded"]},
    ).json()
    assert created["secret"] == own
    assert created["events"] == ["run.succeeded", "run.failed"]
    url = f"/api/webhooks/{created['id']}/"
    changed = client.patch(url, {"events": ["image.labeled"], "is_active": False}).json()
    assert changed["events"] == ["image.labeled"] and changed["is_active"] is False
    assert changed["secret"] is None  # unchanged: not shown again
    rotated = client.patch(url, {"rotate_secret": True}).json()
    assert rotated["secret"] not in (own, None)
    assert Webhook.objects.get(pk=created["id"]).secret == rotated["secret"]


def test_annotators_and_viewers_cannot_manage_webhooks(bob, victor, alice, as_user, project):
    hook = webhook_create(project=project, user=alice, url=PUBLIC_URL)
    for user in (bob, victor):
        client = as_user(user)
        calls = [
            client.get(f"/api/projects/{project.pk}/webhooks/"),
            client.post(f"/api/projects/{project.pk}/webhooks/", {"url": PUBLIC_URL}),
            client.get(f"/api/webhooks/{hook.pk}/"),
            client.patch(f"/api/webhooks/{hook.pk}/", {"is_active": False}),
            client.delete(f"/api/webhooks/{hook.pk}/"),
            client.get(f"/api/webhooks/{hook.pk}/deliveries/"),
            client.post(f"/api/webhooks/{hook.pk}/test/"),
        ]
        assert [r.status_code for r in calls] == [403] * len(calls)
        assert calls[2].json()["error"]["details"]["required_role"] == "admin"
    hook.refresh_from_db()
    assert hook.is_active and Webhook.objects.count() == 1 and not WebhookDelivery.objects.exists()


def test_outsiders_cannot_even_see_that_a_webhook_exists(mallory, alice, as_user, project):
    hook = webhook_create(project=project, user=alice, url=PUBLIC_URL)
    client = as_user(mallory)
    calls = [
        client.get(f"/api/projects/{project.pk}/webhooks/"),
        client.post(f"/api/projects/{project.pk}/webhooks/", {"url": PUBLIC_URL}),
        client.get(f"/api/webhooks/{hook.pk}/"),
        client.patch(f"/api/webhooks/{hook.pk}/", {"url": PUBLIC_URL}),
        client.delete(f"/api/webhooks/{hook.pk}/"),
        client.get(f"/api/webhooks/{hook.pk}/deliveries/"),
        client.post(f"/api/webhooks/{hook.pk}/test/"),
        client.get("/api/webhooks/999999/"),
    ]
    assert [r.status_code for r in calls] == [404] * len(calls)
    assert calls[2].json()["error"]["message"] == "webhook not found"


def test_a_logged_out_caller_gets_401(api, alice, project):
    hook = webhook_create(project=project, user=alice, url=PUBLIC_URL)
    assert api.get(f"/api/webhooks/{hook.pk}/").status_code == 401


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://files.example.com/hook", "url_scheme"),
        ("hooks.example.com/no-scheme", "url_scheme"),
        ("http://", "url_invalid"),
        ("http://example.com:99999/", "url_invalid"),
        ("http://127.0.0.1:8000/api/", "url_private"),
        ("http://localhost/hook", "url_private"),
        ("http://10.1.2.3/hook", "url_private"),
        ("http://192.168.0.10/hook", "url_private"),
        ("http://169.254.169.254/latest/meta-data/", "url_private"),  # cloud metadata
        ("http://[::1]:8080/hook", "url_private"),
        ("http://[::ffff:127.0.0.1]/hook", "url_private"),
        ("http://0.0.0.0/hook", "url_private"),
        ("http://no-such-host.invalid/hook", "url_unresolvable"),
    ],
)
def test_bad_webhook_urls_are_refused_with_a_clear_400(
    alice, as_user, project, settings, url, code
):
    settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE = False
    response = as_user(alice).post(f"/api/projects/{project.pk}/webhooks/", {"url": url})
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not Webhook.objects.exists()


def test_a_private_address_names_the_setting_that_allows_it(alice, as_user, project, settings):
    settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE = False
    client = as_user(alice)
    url = "http://127.0.0.1:9/hook"
    message = client.post(f"/api/projects/{project.pk}/webhooks/", {"url": url}).json()
    assert "LABELLOOP_WEBHOOK_ALLOW_PRIVATE" in message["error"]["message"]
    hook = webhook_create(project=project, user=alice, url=PUBLIC_URL)
    response = client.patch(f"/api/webhooks/{hook.pk}/", {"url": url})
    assert response.status_code == 400 and response.json()["error"]["code"] == "url_private"
    settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE = True
    assert client.post(f"/api/projects/{project.pk}/webhooks/", {"url": url}).status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_URL, "events": ["run.exploded"]},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL, "events": ["ping"]},
        {"url": PUBLIC_URL, "events": "run.failed"},
        {"url": PUBLIC_URL, "secret": "short"},
        {"events": ["run.failed"]},
    ],
)
def test_bad_events_secrets_or_missing_urls_are_a_400(alice, as_user, project, body):
    response = as_user(alice).post(f"/api/projects/{project.pk}/webhooks/", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid" and error["message"]
    assert not Webhook.objects.exists()


def test_secret_and_rotate_secret_together_are_a_400(alice, as_user, project):
    hook = webhook_create(project=project, user=alice, url=PUBLIC_URL)
    response = as_user(alice).patch(
        f"/api/webhooks/{hook.pk}/", {"secret": "x" * 20, "rotate_secret": True}
    )
    assert response.status_code == 400 and response.json()["error"]["code"] == "secret"


def test_a_project_has_at_most_twenty_webhooks(alice, as_user, project):
    for _ in range(20):
        webhook_create(project=project, user=alice, url=PUBLIC_URL)
    response = as_user(alice).post(f"/api/projects/{project.pk}/webhooks/", {"url": PUBLIC_URL})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "too_many_webhooks"


def test_the_test_endpoint_queues_a_ping_and_sends_nothing_itself(
    alice, as_user, project, receiver
):
    hook = webhook_create(project=project, user=alice, url=receiver.url)
    response = as_user(alice).post(f"/api/webhooks/{hook.pk}/test/")
    assert response.status_code == 202
    queued = response.json()
    assert (queued["event"], queued["status"], queued["attempts"]) == ("ping", "pending", 0)
    assert receiver.received == []
    webhook_deliver_due()
    assert receiver.events() == ["ping"]
    assert receiver.received[0].json["requested_by"] == "alice"


def test_a_disabled_webhook_cannot_be_pinged(alice, as_user, project):
    hook = webhook_create(project=project, user=alice, url=PUBLIC_URL, is_active=False)
    response = as_user(alice).post(f"/api/webhooks/{hook.pk}/test/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_disabled"


def test_the_delivery_log_is_newest_first_paginated_and_filterable(
    alice, as_user, project, receiver
):
    hook = webhook_create(project=project, user=alice, url=receiver.url)
    receiver.answer(410)
    first = webhook_ping(webhook=hook)
    webhook_deliver_due()  # the first one fails for good
    ids = [first.pk] + [webhook_ping(webhook=hook).pk for _ in range(4)]
    client = as_user(alice)
    page = client.get(f"/api/webhooks/{hook.pk}/deliveries/?page_size=2").json()
    assert [d["id"] for d in page["results"]] == ids[::-1][:2]
    rest = client.get(page["next"]).json()
    assert [d["id"] for d in rest["results"]] == ids[::-1][2:4]
    failed = client.get(f"/api/webhooks/{hook.pk}/deliveries/?status=failed").json()
    assert [d["id"] for d in failed["results"]] == [first.pk]
    assert failed["results"][0]["last_error"] == "HTTP 410 (not retried)"
    bad = client.get(f"/api/webhooks/{hook.pk}/deliveries/?status=lost")
    assert bad.status_code == 400


def test_deleting_a_webhook_removes_it_and_its_log(alice, as_user, project):
    hook = webhook_create(project=project, user=alice, url=PUBLIC_URL)
    webhook_ping(webhook=hook)
    client = as_user(alice)
    assert client.delete(f"/api/webhooks/{hook.pk}/").status_code == 204
    assert client.get(f"/api/webhooks/{hook.pk}/").status_code == 404
    assert not WebhookDelivery.objects.exists()


def test_the_api_schema_describes_the_webhook_endpoints(api):
    schema = api.get("/api/schema/", {"format": "json"}).json()
    paths = schema["paths"]
    assert set(paths["/api/projects/{project_id}/webhooks/"]) >= {"get", "post"}
    assert set(paths["/api/webhooks/{webhook_id}/"]) >= {"get", "patch", "delete"}
    assert "get" in paths["/api/webhooks/{webhook_id}/deliveries/"]
    assert "post" in paths["/api/webhooks/{webhook_id}/test/"]
    assert "secret" in schema["components"]["schemas"]["WebhookSecret"]["properties"]
    assert "secret" not in schema["components"]["schemas"]["Webhook"]["properties"]


def test_a_failed_delivery_is_sent_again_on_request(alice, as_user, project, hook, receiver):
    receiver.answer(410)  # the receiver was misconfigured: the delivery fails at once
    first = webhook_ping(webhook=hook)
    assert webhook_deliver_due().failed == [first.pk]
    admin = as_user(alice)
    url = f"/api/webhooks/{hook.id}/deliveries/{first.pk}/redeliver/"
    response = admin.post(url)
    assert response.status_code == 202, response.content
    again = response.json()
    assert again["id"] != first.pk and again["status"] == "pending" and again["attempts"] == 0
    first.refresh_from_db()
    assert again["payload"] == first.payload and again["event"] == "ping"
    assert webhook_deliver_due().delivered == [again["id"]]
    assert [r.headers["X-LabelLoop-Delivery"] for r in receiver.received] == [
        str(first.pk),
        str(again["id"]),
    ]
    assert receiver.received[0].body == receiver.received[1].body
    assert receiver.received[1].signed_with(hook.secret)


def test_redelivery_refuses_pending_disabled_and_foreign_deliveries(alice, as_user, project, hook):
    admin = as_user(alice)
    pending = webhook_ping(webhook=hook)
    response = admin.post(f"/api/webhooks/{hook.id}/deliveries/{pending.pk}/redeliver/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "delivery_pending"

    other = webhook_create(project=project, user=alice, url="https://93.184.216.34/other")
    response = admin.post(f"/api/webhooks/{other.id}/deliveries/{pending.pk}/redeliver/")
    assert response.status_code == 404  # a delivery of another webhook, even in my project
    assert response.json()["error"]["code"] == "not_found"

    WebhookDelivery.objects.filter(pk=pending.pk).update(status="failed")
    admin.patch(f"/api/webhooks/{hook.id}/", {"is_active": False}, format="json")
    response = admin.post(f"/api/webhooks/{hook.id}/deliveries/{pending.pk}/redeliver/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "webhook_disabled"
    assert WebhookDelivery.objects.filter(webhook=hook).count() == 1  # nothing queued
