"""Webhooks: a project's HTTP endpoints, and the outbox that is also the delivery log.

Events are written into the outbox inside the transaction of the change they describe (so an
event exists if and only if the change committed); the worker's delivery thread sends them.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from labeling.images.models import Image
from labeling.projects.models import Project


class WebhookEvent(models.TextChoices):
    RUN_SUCCEEDED = "run.succeeded", "A training run finished"
    RUN_FAILED = "run.failed", "A training run failed"
    MODEL_ACTIVATED = "model.activated", "A model version became the active one"
    IMAGE_LABELED = "image.labeled", "Images reached a consensus label (batched)"
    ANNOTATOR_QUALITY_LOW = (
        "annotator.quality_low",
        "An annotator's gold accuracy fell below the project's threshold",
    )


# Not subscribable: sent to one webhook by POST /api/webhooks/{id}/test/.
PING = "ping"


class Webhook(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="webhooks")
    url = models.URLField(max_length=2000)
    # HMAC-SHA256 key of the X-LabelLoop-Signature header. Stored in the clear: signing needs it.
    secret = models.CharField(max_length=200)
    events = ArrayField(models.CharField(max_length=32, choices=WebhookEvent.choices))
    is_active = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(events__len__gte=1), name="webhook_has_events"),
        ]

    def __str__(self) -> str:
        return f"webhook {self.pk} of {self.project_id}: {self.url}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent (or retried)"
    DELIVERED = "delivered", "The endpoint answered 2xx"
    FAILED = "failed", "Gave up: attempts exhausted, or an answer not worth retrying"


class WebhookDelivery(models.Model):
    """One HTTP request's worth of event: the outbox row while pending, the log afterwards."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=32)
    payload = models.JSONField()  # the JSON body, exactly what is signed and sent
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    # Pending: when it is due (a claimed row is pushed ahead while being sent, so a worker
    # that dies mid-send leaves it to be retried, never lost).
    next_attempt_at = models.DateTimeField()
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in DeliveryStatus]), name="delivery_status"
            ),
        ]
        indexes = [
            # The delivery loop's claim: due pending rows only, a small slice of the log.
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="delivery_due"
            ),
            models.Index(fields=["webhook", "-id"], name="delivery_log"),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.event}): {self.status}"


class WebhookLabelEvent(models.Model):
    """An ``image.labeled`` event not yet in a request. Labels arrive one at a time and fast;
    the delivery loop folds a webhook's waiting rows into one ``WebhookDelivery`` (at most
    ``BATCH_MAX`` images), so a labeling session is a few requests, not one per label.
    Insert-only on the labeling path: no hot row for concurrent annotators to queue on."""

    webhook = models.ForeignKey(Webhook, on_delete=models.CASCADE, related_name="+")
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    item = models.JSONField()  # {"image", "label", "agreement", "annotations", ...}
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["webhook", "id"], name="label_event_fold")]

    def __str__(self) -> str:
        return f"image {self.image_id} labeled, for webhook {self.webhook_id}"
