"""Writes for webhooks: managing a project's endpoints, and emitting events into the outbox.

Emitting is one ``INSERT ... SELECT`` in the caller's transaction, so an event is queued if
and only if the change it describes commits, and costs one round trip whether the project
has no webhooks or many. Nothing is sent from here: the worker's delivery thread
(``labeling/webhooks/delivery.py``, or ``python manage.py deliver_webhooks``) does that.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from labeling.core.errors import Conflict, ValidationFailed
from labeling.images.models import Image
from labeling.learning.models import ModelVersion, RunStatus, TrainingRun
from labeling.projects.models import Project
from labeling.webhooks.models import (
    PING,
    DeliveryStatus,
    Webhook,
    WebhookDelivery,
    WebhookEvent,
)
from labeling.webhooks.targets import target_check

# Each webhook multiplies outgoing traffic; a project needs a handful at most.
MAX_WEBHOOKS_PER_PROJECT = 20
MIN_SECRET_LENGTH = 16  # characters; generated secrets are 43 (32 random bytes, base64url)
MAX_SECRET_LENGTH = 200
EVENTS = tuple(e.value for e in WebhookEvent)


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise ValidationFailed(
            f"unknown webhook events {unknown}; choose from {', '.join(EVENTS)}",
            code="events",
        )
    if not events:
        raise ValidationFailed(
            f"events cannot be empty; choose from {', '.join(EVENTS)}", code="events"
        )
    return [e for e in EVENTS if e in events]  # canonical order, no repeats


def _check_secret(secret: str) -> str:
    if not MIN_SECRET_LENGTH <= len(secret) <= MAX_SECRET_LENGTH:
        raise ValidationFailed(
            f"secret must be {MIN_SECRET_LENGTH} to {MAX_SECRET_LENGTH} characters long "
            f"(got {len(secret)}); leave it out to have one generated",
            code="secret",
        )
    return secret


def webhook_create(
    *,
    project: Project,
    user: AbstractBaseUser | None,
    url: str,
    events: list[str] | None = None,
    secret: str | None = None,
    description: str = "",
    is_active: bool = True,
) -> Webhook:
    """A new endpoint; every event unless ``events`` says otherwise, a generated secret
    unless one is given."""
    url = target_check(url)
    with transaction.atomic():
        # Lock the project row so two concurrent creates cannot both pass the cap.
        Project.objects.select_for_update().filter(pk=project.pk).first()
        if Webhook.objects.filter(project=project).count() >= MAX_WEBHOOKS_PER_PROJECT:
            raise ValidationFailed(
                f"a project can have at most {MAX_WEBHOOKS_PER_PROJECT} webhooks",
                code="too_many_webhooks",
            )
        return Webhook.objects.create(
            project=project,
            url=url,
            events=_check_events(list(EVENTS) if events is None else events),
            secret=_new_secret() if secret is None else _check_secret(secret),
            description=description,
            is_active=is_active,
            created_by=user,
        )


def webhook_update(
    *, webhook: Webhook, rotate_secret: bool = False, **fields: Any
) -> tuple[Webhook, bool]:
    """Change ``url``, ``events``, ``is_active``, ``description`` or ``secret`` (or draw a
    new secret). Returns (webhook, whether the secret changed)."""
    unknown = set(fields) - {"url", "events", "is_active", "description", "secret"}
    if unknown:
        raise ValidationFailed(f"unknown webhook fields: {sorted(unknown)}")
    if rotate_secret and "secret" in fields:
        raise ValidationFailed("send either secret or rotate_secret, not both", code="secret")
    if "url" in fields:
        fields["url"] = target_check(fields["url"])
    if "events" in fields:
        fields["events"] = _check_events(fields["events"])
    if "secret" in fields:
        fields["secret"] = _check_secret(fields["secret"])
    if rotate_secret:
        fields["secret"] = _new_secret()
    for name, value in fields.items():
        setattr(webhook, name, value)
    webhook.save(update_fields=[*fields, "updated_at"])
    return webhook, "secret" in fields


def webhook_delete(*, webhook: Webhook) -> None:
    """Removes the endpoint, its pending events and its delivery log."""
    webhook.delete()


def webhook_redeliver(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue the same body again as a new delivery (a new X-LabelLoop-Delivery id), for a
    delivery that failed, or one a receiver lost after acknowledging it."""
    webhook = delivery.webhook
    if delivery.status == DeliveryStatus.PENDING:
        raise Conflict(
            f"delivery {delivery.pk} is still pending (attempt {delivery.attempts} so far); "
            "it is retried by itself",
            code="delivery_pending",
        )
    if not webhook.is_active:
        raise Conflict(
            "this webhook is disabled; enable it (is_active: true) to send it anything",
            code="webhook_disabled",
        )
    return WebhookDelivery.objects.create(
        webhook=webhook,
        event=delivery.event,
        payload=delivery.payload,
        next_attempt_at=timezone.now(),
    )


def webhook_ping(*, webhook: Webhook, user: AbstractBaseUser | None = None) -> WebhookDelivery:
    """Queue a ``ping`` to this one webhook (to check the receiver and its signature check)."""
    if not webhook.is_active:
        raise Conflict(
            "this webhook is disabled; enable it (is_active: true) to send it anything",
            code="webhook_disabled",
        )
    now = timezone.now()
    body = _envelope(
        PING,
        webhook.project,
        now,
        {
            "webhook": {"id": webhook.pk, "url": webhook.url, "events": webhook.events},
            "requested_by": getattr(user, "username", None),
        },
    )
    return WebhookDelivery.objects.create(
        webhook=webhook, event=PING, payload=body, next_attempt_at=now
    )


# --- emitting events ------------------------------------------------------------------


def _envelope(event: str, project: Project, now, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": event,
        "project": {"id": project.pk, "slug": project.slug},
        "occurred_at": now.isoformat(),
        **data,
    }


def _json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder)


_EMIT_SQL = """
INSERT INTO webhooks_webhookdelivery
    (webhook_id, event, payload, status, attempts, next_attempt_at, last_error, created_at)
SELECT w.id, %(event)s, %(payload)s::jsonb, %(pending)s, 0, %(now)s, '', %(now)s
FROM webhooks_webhook w
WHERE w.project_id = %(project)s AND w.is_active AND %(event)s = ANY(w.events)
"""


def webhook_emit(*, project: Project, event: str, payload: dict[str, Any]) -> int:
    """Queue ``event`` for each active webhook of ``project`` subscribed to it, inside the
    caller's transaction: ``payload`` holds the event's own keys, which go into the body
    beside ``event``, ``project`` and ``occurred_at``. Returns the rows queued.
    (``image.labeled`` is batched: see ``webhook_emit_images_labeled``.)"""
    if event not in EVENTS or event == WebhookEvent.IMAGE_LABELED:
        raise ValueError(f"webhook_emit does not queue {event!r} events")
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            _EMIT_SQL,
            {
                "event": event,
                "payload": _json(_envelope(event, project, now, payload)),
                "pending": DeliveryStatus.PENDING,
                "now": now,
                "project": project.pk,
            },
        )
        return cursor.rowcount


_EMIT_LABELS_SQL = """
INSERT INTO webhooks_webhooklabelevent (webhook_id, image_id, item, created_at)
SELECT w.id, x.image, x.item::jsonb, %(now)s
FROM webhooks_webhook w
CROSS JOIN unnest(%(images)s::bigint[], %(items)s::text[]) AS x(image, item)
WHERE w.project_id = %(project)s AND w.is_active AND %(event)s = ANY(w.events)
"""


def webhook_emit_images_labeled(*, images: list[Image], project: Project) -> int:
    """``image.labeled`` for these images (one submission's, or an upload's imported labels),
    in one statement inside the caller's transaction; the delivery loop batches the rows
    into requests. Returns the rows queued."""
    if not images:
        return 0
    now = timezone.now()
    items = [
        _json(
            {
                "image": image.pk,
                "original_name": image.original_name,
                "label": image.consensus_label,
                "agreement": image.agreement,
                "annotations": image.annotation_count,
                "labeled_at": now.isoformat(),
            }
        )
        for image in images
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _EMIT_LABELS_SQL,
            {
                "images": [image.pk for image in images],
                "items": items,
                "now": now,
                "project": project.pk,
                "event": WebhookEvent.IMAGE_LABELED.value,
            },
        )
        return cursor.rowcount


def webhook_emit_run(*, run_id: int) -> int:
    """``run.succeeded`` or ``run.failed`` for a run that just finished (in the transaction
    that finished it); nothing for other states (a cancelled run is neither)."""
    run = TrainingRun.objects.select_related("project").get(pk=run_id)
    event = {
        RunStatus.SUCCEEDED: WebhookEvent.RUN_SUCCEEDED,
        RunStatus.FAILED: WebhookEvent.RUN_FAILED,
    }.get(run.status)
    if event is None:
        return 0
    version = (
        ModelVersion.objects.filter(pk=run.source_version_id)
        if run.source_version_id
        else ModelVersion.objects.filter(run_id=run.pk)
    ).values_list("number", flat=True)
    metrics = {
        k: run.metrics[k]
        for k in ("accuracy", "promoted", "val_source", "promotion")
        if k in run.metrics
    }
    # The error's first line only: the stored traceback is for operators, not receivers.
    error = run.error.strip().splitlines()[0][:500] if run.error.strip() else ""
    return webhook_emit(
        project=run.project,
        event=event,
        payload={
            "run": {
                "id": run.pk,
                "trigger": run.trigger,
                "status": run.status,
                "labels_snapshot": run.labels_snapshot,
                "attempts": run.attempts,
                "model_version": version.first(),
                "metrics": metrics,
                "error": error,
                "created_at": run.created_at,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
            }
        },
    )


def webhook_emit_version_activated(
    *, version: ModelVersion, user: AbstractBaseUser | None = None
) -> int:
    """``model.activated``: a run promoted its new model, or an admin activated a version."""
    return webhook_emit(
        project=version.project,
        event=WebhookEvent.MODEL_ACTIVATED,
        payload={
            "model_version": {
                "id": version.pk,
                "number": version.number,
                "run": version.run_id,
                "labels_used": version.labels_used,
                "accuracy": version.metrics.get("accuracy"),
                "val_source": version.metrics.get("val_source"),
                "created_at": version.created_at,
            },
            "activated_by": getattr(user, "username", None),
        },
    )


def webhook_emit_annotator_quality_low(
    *,
    project: Project,
    username: str,
    answered: int,
    correct: int,
    accuracy: float,
    threshold: float,
) -> int:
    """``annotator.quality_low``: an annotator's gold accuracy just fell below the project's
    ``gold_alert_accuracy`` (once per crossing; see ``annotations.gold``)."""
    return webhook_emit(
        project=project,
        event=WebhookEvent.ANNOTATOR_QUALITY_LOW,
        payload={
            "annotator": username,
            "gold_answered": answered,
            "gold_correct": correct,
            "gold_accuracy": round(accuracy, 4),
            "threshold": threshold,
        },
    )
