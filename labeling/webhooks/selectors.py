"""Reads for webhooks: a project's endpoints, one endpoint for a user, its delivery log."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from labeling.core.errors import NotFound
from labeling.projects.models import Project, Role
from labeling.projects.selectors import project_get_for_user
from labeling.webhooks.models import Webhook, WebhookDelivery


def webhook_list(*, project: Project) -> QuerySet[Webhook]:
    return Webhook.objects.filter(project=project).order_by("id")


def webhook_get_for_user(
    *, user: AbstractBaseUser, webhook_id: int, role: str = Role.ADMIN
) -> Webhook:
    """The webhook if ``user`` holds ``role`` in its project: non-members get NotFound
    (as for the project itself), lesser roles PermissionDenied."""
    webhook = Webhook.objects.select_related("project").filter(pk=webhook_id).first()
    if webhook is None:
        raise NotFound("webhook not found")
    try:
        project_get_for_user(user=user, project_id=webhook.project_id, role=role)
    except NotFound:
        raise NotFound("webhook not found") from None
    return webhook


def delivery_list(*, webhook: Webhook, status: str | None = None) -> QuerySet[WebhookDelivery]:
    """The log, newest first."""
    deliveries = WebhookDelivery.objects.filter(webhook=webhook)
    if status:
        deliveries = deliveries.filter(status=status)
    return deliveries.order_by("-id")


def delivery_get(*, webhook: Webhook, delivery_id: int) -> WebhookDelivery:
    """A delivery of this webhook; NotFound for another webhook's (or none)."""
    delivery = (
        WebhookDelivery.objects.select_related("webhook", "webhook__project")
        .filter(pk=delivery_id, webhook=webhook)
        .first()
    )
    if delivery is None:
        raise NotFound(f"webhook {webhook.pk} has no delivery {delivery_id}")
    return delivery
