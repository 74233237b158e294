"""Delivering webhooks to a real HTTP receiver on loopback: signatures, retries with backoff,
giving up, the address check at send time, concurrent deliverers, the command."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from labeling.webhooks.delivery import webhook_deliver_due, webhook_prune_log
from labeling.webhooks.models import DeliveryStatus, WebhookDelivery
from labeling.webhooks.services import webhook_create, webhook_ping, webhook_update
from tests.labeling.webhooks.conftest import Receiver

pytestmark = pytest.mark.django_db


def test_a_receiver_can_verify_the_signature_with_the_secret(hook, receiver):
    delivery = webhook_ping(webhook=hook)
    done = webhook_deliver_due(limit=10)
    assert done.delivered == [delivery.pk]
    [request] = receiver.received
    assert request.path == "/hook"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-LabelLoop-Event"] == "ping"
    assert request.headers["X-LabelLoop-Delivery"] == str(delivery.pk)
    assert request.signed_with(hook.secret)
    assert not request.signed_with("another-secret-of-some-length")
    tampered = type(request)(request.path, request.headers, request.body.replace(b"ping", b"pong"))
    assert not tampered.signed_with(hook.secret)
    assert request.json["event"] == "ping"
    assert request.json["project"] == {"id": hook.project_id, "slug": "digits"}
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.DELIVERED
    assert (delivery.attempts, delivery.last_status_code) == (1, 200)
    assert delivery.delivered_at is not None


def test_a_500_is_retried_with_backoff_until_it_succeeds(hook, receiver):
    receiver.answer(500, 502)
    delivery = webhook_ping(webhook=hook)
    start = timezone.now()
    assert webhook_deliver_due(now=start).retrying == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert (delivery.attempts, delivery.last_status_code) == (1, 500)
    assert delivery.next_attempt_at == start + timedelta(seconds=10)

    assert webhook_deliver_due(now=start + timedelta(seconds=9)).sent == 0  # not due yet
    assert webhook_deliver_due(now=start + timedelta(seconds=10)).retrying == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.next_attempt_at == start + timedelta(seconds=70)  # then a minute
    assert webhook_deliver_due(now=start + timedelta(seconds=70)).delivered == [delivery.pk]

    assert len(receiver.received) == 3
    assert {r.headers["X-LabelLoop-Delivery"] for r in receiver.received} == {str(delivery.pk)}
    assert [r.headers["X-LabelLoop-Attempt"] for r in receiver.received] == ["1", "2", "3"]
    assert len({r.body for r in receiver.received}) == 1  # a retry resends the same body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("delivered", 3, "")


def test_a_delivery_is_given_up_after_max_attempts_and_the_log_shows_it(
    hook, receiver, settings, as_user, alice
):
    settings.LABELLOOP_WEBHOOK_MAX_ATTEMPTS = 3
    receiver.answer(503, 503, 503, 503)
    delivery = webhook_ping(webhook=hook)
    now = timezone.now()
    for _ in range(3):
        webhook_deliver_due(now=now)
        now += timedelta(days=1)
    assert webhook_deliver_due(now=now + timedelta(days=30)).sent == 0
    assert len(receiver.received) == 3

    log = as_user(alice).get(f"/api/webhooks/{hook.pk}/deliveries/").json()["results"]
    assert [d["id"] for d in log] == [delivery.pk]
    assert log[0]["status"] == "failed"
    assert log[0]["attempts"] == 3 and log[0]["last_status_code"] == 503
    assert "gave up after 3 attempts" in log[0]["last_error"]
    assert log[0]["next_attempt_at"] is None


def test_connection_errors_and_timeouts_are_retried(
    project, alice, receiver, closed_port_url, settings
):
    settings.LABELLOOP_WEBHOOK_TIMEOUT = 0.3
    receiver.answer(200, delay=3.0)  # answers long after the sender gave up
    slow = webhook_ping(webhook=webhook_create(project=project, user=alice, url=receiver.url))
    down = webhook_ping(webhook=webhook_create(project=project, user=alice, url=closed_port_url))
    done = webhook_deliver_due()
    assert sorted(done.retrying) == sorted([slow.pk, down.pk])
    slow.refresh_from_db()
    down.refresh_from_db()
    assert slow.last_error == "timed out after 0.3 s" and slow.last_status_code is None
    assert down.last_error.startswith("ConnectionError")
    assert slow.status == down.status == DeliveryStatus.PENDING


def test_a_4xx_answer_fails_at_once_but_a_429_waits_as_long_as_asked(hook, receiver):
    receiver.answer(410)
    gone = webhook_ping(webhook=hook)
    assert webhook_deliver_due().failed == [gone.pk]
    gone.refresh_from_db()
    assert (gone.attempts, gone.last_error) == (1, "HTTP 410 (not retried)")

    receiver.answer(429, headers={"Retry-After": "120"})
    busy = webhook_ping(webhook=hook)
    now = timezone.now()
    assert webhook_deliver_due(now=now).retrying == [busy.pk]
    busy.refresh_from_db()
    assert busy.next_attempt_at == now + timedelta(seconds=120)  # not the 10 s backoff


def test_a_disabled_webhook_gets_nothing_until_it_is_enabled_again(hook, receiver):
    queued = webhook_ping(webhook=hook)
    webhook_update(webhook=hook, is_active=False)
    assert webhook_deliver_due().sent == 0
    assert receiver.received == []
    webhook_update(webhook=hook, is_active=True)
    assert webhook_deliver_due().delivered == [queued.pk]


def test_an_address_that_turned_private_is_refused_at_delivery_time(hook, receiver, settings):
    delivery = webhook_ping(webhook=hook)
    settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE = False
    assert webhook_deliver_due().failed == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.last_error.startswith("refused: url host '127.0.0.1' resolves to 127.0.0.1")
    assert receiver.received == []


def test_redirects_are_not_followed(hook, receiver):
    receiver.answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
    delivery = webhook_ping(webhook=hook)
    assert webhook_deliver_due().failed == [delivery.pk]
    delivery.refresh_from_db()
    assert delivery.last_error == "HTTP 302 (redirects are not followed)"
    assert len(receiver.received) == 1


@pytest.mark.django_db(transaction=True)
def test_two_deliverers_at_once_send_each_delivery_exactly_once(hook, receiver):
    receiver.answer(*[200] * 40, delay=0.05)  # slow enough for the two to overlap
    queued = {webhook_ping(webhook=hook).pk for _ in range(40)}
    sent: list[list[int]] = [[], []]

    def deliverer(i: int) -> None:
        try:
            while True:
                done = webhook_deliver_due(limit=4)
                if not done.sent:
                    return
                sent[i].extend(done.delivered)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliverer, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(sent[0] + sent[1]) == sorted(queued)
    assert sent[0] and sent[1]  # both did part of the work
    ids = [r.headers["X-LabelLoop-Delivery"] for r in receiver.received]
    assert sorted(ids) == sorted(str(pk) for pk in queued)  # none twice
    assert not WebhookDelivery.objects.exclude(status=DeliveryStatus.DELIVERED).exists()


def test_the_deliver_webhooks_command_sends_what_is_due_and_exits(hook, receiver, capsys):
    receiver.answer(200, 500)
    webhook_ping(webhook=hook)
    webhook_ping(webhook=hook)
    call_command("deliver_webhooks", "--once")
    assert "1 delivered, 1 to retry, 0 failed" in capsys.readouterr().out
    assert len(receiver.received) == 2


def test_old_finished_deliveries_are_pruned_from_the_log_but_pending_ones_stay(hook, receiver):
    receiver.answer(200, 410, 500)
    delivered, failed, pending = (webhook_ping(webhook=hook) for _ in range(3))
    done = webhook_deliver_due()
    assert (done.delivered, done.failed, done.retrying) == (
        [delivered.pk],
        [failed.pk],
        [pending.pk],
    )
    recent = webhook_ping(webhook=hook)
    month_ago = timezone.now() - timedelta(days=31)
    WebhookDelivery.objects.exclude(pk=recent.pk).update(created_at=month_ago)
    assert webhook_prune_log() == 2
    assert set(WebhookDelivery.objects.values_list("pk", flat=True)) == {pending.pk, recent.pk}


class FakeDNS:
    """A resolver for one made-up name (what lives off this machine); every other lookup,
    IP literals included, goes to the real one. `answers` are consumed one per lookup."""

    def __init__(self, monkeypatch, name: str, *answers: str) -> None:
        self.name, self.answers, self.lookups = name, list(answers), 0
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host != name:
                return real(host, port, *args, **kwargs)
            self.lookups += 1
            address = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
            return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_a_name_that_rebinds_to_loopback_after_the_check_cannot_reach_it(
    project, alice, receiver, settings, monkeypatch
):
    """DNS rebinding: the name resolves to a public address for every check and to 127.0.0.1
    for any later lookup. The request goes to the checked address (unreachable from this
    offline machine), so the loopback receiver never hears from it."""
    settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE = False
    settings.LABELLOOP_WEBHOOK_TIMEOUT = 1.0
    port = receiver.server.server_port
    dns = FakeDNS(monkeypatch, "rebind.example", "93.184.216.34", "93.184.216.34", "127.0.0.1")
    hook = webhook_create(project=project, user=alice, url=f"http://rebind.example:{port}/hook")
    delivery = webhook_ping(webhook=hook)
    done = webhook_deliver_due()
    assert done.retrying == [delivery.pk]  # could not connect: retried later, not sent
    assert receiver.received == []
    assert dns.lookups == 2  # the save-time check and the send-time check, nothing after
    delivery.refresh_from_db()
    assert "93.184.216.34" in delivery.last_error or "timed out" in delivery.last_error


def test_the_request_names_the_url_host_path_and_credentials(project, alice, receiver, monkeypatch):
    port = receiver.server.server_port
    FakeDNS(monkeypatch, "hooks.example", "127.0.0.1")
    url = f"http://bot:s%40fe@hooks.example:{port}/in/labelloop?team=7&v=1"
    webhook_ping(webhook=webhook_create(project=project, user=alice, url=url))
    assert len(webhook_deliver_due().delivered) == 1
    [request] = receiver.received
    assert request.path == "/in/labelloop?team=7&v=1"
    assert request.headers["Host"] == f"hooks.example:{port}"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"bot:s@fe").decode()


def test_an_unresolvable_name_is_retried_not_given_up(project, alice, receiver, monkeypatch):
    """DNS that is down for a minute must not lose deliveries."""
    port = receiver.server.server_port
    hook = webhook_create(project=project, user=alice, url=f"http://later.example:{port}/h")
    delivery = webhook_ping(webhook=hook)  # allowed private: the name was not resolved yet
    assert webhook_deliver_due().retrying == [delivery.pk]
    delivery.refresh_from_db()
    assert "cannot be resolved" in delivery.last_error
    FakeDNS(monkeypatch, "later.example", "127.0.0.1")
    assert webhook_deliver_due(now=timezone.now() + timedelta(minutes=5)).delivered == [delivery.pk]
    assert len(receiver.received) == 1


@pytest.fixture
def tls_receiver():
    """An https receiver for `hooks.test` with a certificate from a throwaway CA (trustme)."""
    import trustme

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("hooks.test").configure_cert(context)
    receiver = Receiver(tls=context, host="hooks.test")
    with ca.cert_pem.tempfile() as ca_file:
        yield receiver, ca_file
    receiver.close()


def test_https_receivers_are_verified_against_the_url_name(
    project, alice, tls_receiver, settings, monkeypatch
):
    receiver, ca_file = tls_receiver
    FakeDNS(monkeypatch, "hooks.test", "127.0.0.1")
    hook = webhook_create(project=project, user=alice, url=receiver.url)
    # The public CAs do not know this receiver's CA: not sent, retried later.
    first = webhook_ping(webhook=hook)
    assert webhook_deliver_due().retrying == [first.pk]
    first.refresh_from_db()
    assert "CERTIFICATE_VERIFY_FAILED" in first.last_error
    # With its CA configured the same delivery goes through, to the name in the certificate.
    settings.LABELLOOP_WEBHOOK_CA_BUNDLE = ca_file
    later = timezone.now() + timedelta(minutes=5)
    assert webhook_deliver_due(now=later).delivered == [first.pk]
    [request] = receiver.received
    assert request.headers["Host"] == f"hooks.test:{receiver.server.server_port}"
    assert request.signed_with(hook.secret)
    # The same certificate presented for another name is refused, whatever the CA.
    FakeDNS(monkeypatch, "other.test", "127.0.0.1")
    port = receiver.server.server_port
    other = webhook_create(project=project, user=alice, url=f"https://other.test:{port}/hook")
    wrong = webhook_ping(webhook=other)
    assert webhook_deliver_due(now=later).retrying == [wrong.pk]
    wrong.refresh_from_db()
    assert "other.test" in wrong.last_error
    assert len(receiver.received) == 1
