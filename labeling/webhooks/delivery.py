"""Sending webhook deliveries: signed POSTs with retries, from the worker, never a request.

    python manage.py worker                    # starts a delivery thread beside training
    python manage.py deliver_webhooks [--once] # the same loop on its own (ops, tests)

Each round folds waiting ``image.labeled`` rows into batched deliveries, claims due pending
deliveries with ``SELECT ... FOR UPDATE SKIP LOCKED`` (any number of workers may run), pushes
them ahead while they are being sent (a worker that dies mid-send leaves them to be retried),
POSTs each one, and records the outcome: delivered (2xx), retried with exponential backoff
(connection errors, timeouts, 5xx, 429), or failed (other answers, or attempts exhausted).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import certifi
import urllib3
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from labeling.core.errors import ValidationFailed
from labeling.webhooks.models import (
    DeliveryStatus,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
    WebhookLabelEvent,
)
from labeling.webhooks.targets import Target, target_resolve

logger = logging.getLogger(__name__)

# Seconds to wait after the 1st, 2nd, ... failed attempt; the last value repeats. Eight
# attempts (the default) span about 14.5 hours, enough to ride out a receiver's outage.
BACKOFF_SECONDS = (10, 60, 300, 1800, 7200, 21600)
# A 429/503 may ask for a longer wait (Retry-After); honoured up to an hour.
MAX_RETRY_AFTER = 3600
# Images per image.labeled request: keeps a body around 100 KB.
BATCH_MAX = 500
USER_AGENT = "LabelLoop-Webhooks/1"
# Delivered and failed rows stay in the log this long; the loop prunes older ones hourly.
LOG_RETENTION = timedelta(days=30)
PRUNE_EVERY = timedelta(hours=1)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The X-LabelLoop-Signature header's value: HMAC-SHA256 of ``"<timestamp>." + body``.

    ``timestamp`` (Unix seconds, also sent as X-LabelLoop-Timestamp) is inside the MAC, so a
    receiver that rejects old timestamps cannot be fed a captured request again later.
    """
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt (1-based)."""
    return timedelta(seconds=BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1])


@dataclass
class Round:
    """What one call of ``webhook_deliver_due`` did (delivery ids)."""

    folded: int = 0  # image.labeled rows folded into new deliveries
    delivered: list[int] = field(default_factory=list)
    retrying: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return len(self.delivered) + len(self.retrying) + len(self.failed)


def webhook_deliver_due(*, limit: int = 20, now: datetime | None = None) -> Round:
    """Fold, claim up to ``limit`` due deliveries, send them, record what happened.

    ``now`` is the round's clock (tests move it forward instead of sleeping through the
    backoff)."""
    now = now or timezone.now()
    result = Round(folded=fold_labels(now=now))
    timeout = settings.LABELLOOP_WEBHOOK_TIMEOUT
    # Claimed rows are invisible to other workers until this lease ends: long enough to
    # send them all one after another, each timing out.
    lease = timedelta(seconds=limit * (timeout + 1) + 60)
    for delivery in _claim(limit=limit, now=now, until=now + lease):
        outcome = _send(delivery)
        _record(delivery, outcome, now=now)
        {
            DeliveryStatus.DELIVERED: result.delivered,
            DeliveryStatus.PENDING: result.retrying,
            DeliveryStatus.FAILED: result.failed,
        }[outcome.status].append(delivery.pk)
    return result


# --- folding image.labeled ------------------------------------------------------------


def fold_labels(*, now: datetime) -> int:
    """Turn waiting ``image.labeled`` rows into deliveries of up to ``BATCH_MAX`` images,
    once a webhook's oldest waiting row is ``LABELLOOP_WEBHOOK_BATCH_SECONDS`` old (or a
    full batch is waiting): at most one request per webhook per window while labels flow."""
    window = timedelta(seconds=settings.LABELLOOP_WEBHOOK_BATCH_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT e.webhook_id FROM webhooks_webhooklabelevent e
            JOIN webhooks_webhook w ON w.id = e.webhook_id AND w.is_active
            GROUP BY e.webhook_id
            HAVING min(e.created_at) <= %s OR count(*) >= %s
            """,
            [now - window, BATCH_MAX],
        )
        webhook_ids = [row[0] for row in cursor.fetchall()]
    folded = 0
    for webhook_id in webhook_ids:
        while True:
            n = _fold_one(webhook_id=webhook_id, now=now, window=window)
            folded += n
            if n < BATCH_MAX:
                break
    return folded


def _fold_one(*, webhook_id: int, now: datetime, window: timedelta) -> int:
    with transaction.atomic():
        rows = list(
            WebhookLabelEvent.objects.select_for_update(skip_locked=True)
            .filter(webhook_id=webhook_id)
            .order_by("id")
            .values_list("id", "image_id", "item", "created_at")[:BATCH_MAX]
        )
        if not rows or (len(rows) < BATCH_MAX and rows[0][3] > now - window):
            return 0  # another worker took them, or the rest is too fresh to send yet
        webhook = Webhook.objects.select_related("project").get(pk=webhook_id)
        latest = {image_id: item for _, image_id, item, _ in rows}  # relabeled: newest wins
        body = {
            "event": WebhookEvent.IMAGE_LABELED.value,
            "project": {"id": webhook.project_id, "slug": webhook.project.slug},
            "occurred_at": now.isoformat(),
            "count": len(latest),
            "images": list(latest.values()),
        }
        WebhookDelivery.objects.create(
            webhook=webhook,
            event=WebhookEvent.IMAGE_LABELED,
            payload=body,
            next_attempt_at=now,
        )
        WebhookLabelEvent.objects.filter(pk__in=[r[0] for r in rows]).delete()
    return len(rows)


# --- claiming, sending, recording -----------------------------------------------------

_CLAIM_SQL = """
UPDATE webhooks_webhookdelivery d
SET attempts = d.attempts + 1, next_attempt_at = %(until)s
WHERE d.id IN (
    SELECT q.id FROM webhooks_webhookdelivery q
    JOIN webhooks_webhook w ON w.id = q.webhook_id
    WHERE q.status = 'pending' AND q.next_attempt_at <= %(now)s AND w.is_active
    ORDER BY q.next_attempt_at, q.id
    LIMIT %(limit)s
    FOR UPDATE OF q SKIP LOCKED
)
RETURNING d.id
"""


def _claim(*, limit: int, now: datetime, until: datetime) -> list[WebhookDelivery]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL, {"now": now, "until": until, "limit": limit})
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return []
    return list(WebhookDelivery.objects.filter(pk__in=ids).select_related("webhook").order_by("id"))


@dataclass(frozen=True)
class Outcome:
    status: str  # a DeliveryStatus
    status_code: int | None = None
    error: str = ""
    retry_after: int | None = None  # seconds the receiver asked for


def _send(delivery: WebhookDelivery) -> Outcome:
    webhook = delivery.webhook
    try:
        # Checked again now (DNS may point elsewhere than when the webhook was saved), and
        # the connection below goes to the address checked here, not to a fresh lookup.
        target = target_resolve(webhook.url)
    except ValidationFailed as exc:
        if exc.code == "url_unresolvable":  # DNS down or the name not there yet: retry
            return Outcome(DeliveryStatus.PENDING, error=exc.message)
        return Outcome(DeliveryStatus.FAILED, error=f"refused: {exc.message}")
    body = json.dumps(delivery.payload, separators=(",", ":")).encode()
    timestamp = int(time.time())  # of this attempt: a retry is signed afresh
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-LabelLoop-Event": delivery.event,
        "X-LabelLoop-Delivery": str(delivery.pk),
        "X-LabelLoop-Attempt": str(delivery.attempts),
        "X-LabelLoop-Timestamp": str(timestamp),
        "X-LabelLoop-Signature": sign(webhook.secret, body, timestamp),
    }
    if target.username is not None:
        credentials = f"{target.username}:{target.password or ''}"
        headers["Authorization"] = urllib3.util.make_headers(basic_auth=credentials)[
            "authorization"
        ]
    timeout = settings.LABELLOOP_WEBHOOK_TIMEOUT
    try:
        # One connection to the checked address; the URL's name for the Host header, the TLS
        # server name and the certificate check. No redirects (a redirect could lead past the
        # check), no proxies from the environment, the response body left unread.
        with _pool(target, timeout) as pool:  # closed on the way out, body unread
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=headers,
                redirect=False,
                retries=False,
                assert_same_host=False,
                preload_content=False,
            )
            response.release_conn()
    except (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ProtocolError) as exc:
        # (NewConnectionError is a ConnectTimeoutError to urllib3: caught before timeouts.)
        where = f"{target.host_header} ({target.address})"
        reason = getattr(exc, "__cause__", None) or exc
        return Outcome(DeliveryStatus.PENDING, error=f"ConnectionError: {where}: {reason}"[:1000])
    except urllib3.exceptions.TimeoutError:
        return Outcome(DeliveryStatus.PENDING, error=f"timed out after {timeout:g} s")
    except (urllib3.exceptions.HTTPError, OSError) as exc:  # TLS, a malformed answer, ...
        return Outcome(DeliveryStatus.PENDING, error=f"{type(exc).__name__}: {exc}"[:1000])
    code = response.status
    if 200 <= code < 300:
        return Outcome(DeliveryStatus.DELIVERED, status_code=code)
    if code == 429 or code >= 500:
        return Outcome(
            DeliveryStatus.PENDING,
            status_code=code,
            error=f"HTTP {code}",
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    reason = "redirects are not followed" if 300 <= code < 400 else "not retried"
    return Outcome(DeliveryStatus.FAILED, status_code=code, error=f"HTTP {code} ({reason})")


def _pool(target: Target, timeout: float) -> urllib3.HTTPConnectionPool:
    """A one-connection pool to ``target.address``, for one request."""
    options = {"timeout": urllib3.Timeout(total=timeout), "maxsize": 1, "retries": False}
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(
            str(target.address),
            target.port,
            server_hostname=target.host,
            assert_hostname=target.host,
            cert_reqs="CERT_REQUIRED",
            ca_certs=settings.LABELLOOP_WEBHOOK_CA_BUNDLE or certifi.where(),
            **options,
        )
    return urllib3.HTTPConnectionPool(str(target.address), target.port, **options)


def _retry_after(value: str | None) -> int | None:
    if value is None or not value.strip().isdigit():
        return None  # the HTTP-date form is rare from webhook receivers; use the backoff
    return min(int(value), MAX_RETRY_AFTER)


def _record(delivery: WebhookDelivery, outcome: Outcome, *, now: datetime) -> None:
    fields: dict = {
        "status": outcome.status,
        "last_status_code": outcome.status_code,
        "last_error": outcome.error,
    }
    if outcome.status == DeliveryStatus.DELIVERED:
        fields["delivered_at"] = timezone.now()
    elif outcome.status == DeliveryStatus.PENDING:
        if delivery.attempts >= settings.LABELLOOP_WEBHOOK_MAX_ATTEMPTS:
            fields["status"] = DeliveryStatus.FAILED
            fields["last_error"] = f"{outcome.error}; gave up after {delivery.attempts} attempts"
        else:
            wait = backoff(delivery.attempts)
            if outcome.retry_after is not None:
                wait = max(wait, timedelta(seconds=outcome.retry_after))
            fields["next_attempt_at"] = now + wait
    # Only while still pending: a row deleted (webhook removed) meanwhile stays deleted.
    WebhookDelivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(**fields)
    log = logger.info if outcome.status == DeliveryStatus.DELIVERED else logger.warning
    log(
        "webhook %d delivery %d (%s) attempt %d: %s %s",
        delivery.webhook_id,
        delivery.pk,
        delivery.event,
        delivery.attempts,
        fields["status"],
        outcome.error or outcome.status_code,
    )


def webhook_prune_log(*, now: datetime | None = None) -> int:
    """Delete finished deliveries older than ``LOG_RETENTION``; pending ones always stay."""
    cutoff = (now or timezone.now()) - LOG_RETENTION
    deleted, _ = (
        WebhookDelivery.objects.filter(created_at__lt=cutoff)
        .exclude(status=DeliveryStatus.PENDING)
        .delete()
    )
    return deleted


# --- the loop -------------------------------------------------------------------------


class Deliverer:
    """Runs delivery rounds until ``stopping`` is set: in a thread of the worker (``start``)
    or in the foreground of ``manage.py deliver_webhooks`` (``run``)."""

    def __init__(self, stopping: threading.Event, *, poll_seconds: float = 2.0, limit: int = 20):
        self.stopping = stopping
        self.poll_seconds, self.limit = poll_seconds, limit
        self._thread = threading.Thread(target=self.run, name="webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def run(self) -> None:
        pruned_at = None
        try:
            while not self.stopping.is_set():
                close_old_connections()
                try:
                    if pruned_at is None or timezone.now() - pruned_at > PRUNE_EVERY:
                        webhook_prune_log()
                        pruned_at = timezone.now()
                    done = webhook_deliver_due(limit=self.limit)
                except Exception:  # a database hiccup must not end deliveries for good
                    logger.exception("webhook delivery round failed; retrying")
                    done = Round()
                if done.sent < self.limit:
                    self.stopping.wait(self.poll_seconds)
        finally:
            connection.close()
