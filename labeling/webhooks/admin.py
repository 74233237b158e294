from __future__ import annotations

from django.contrib import admin

from labeling.core.admin_base import ReadOnlyAdmin
from labeling.webhooks.models import Webhook, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    # The signing secret is never shown: it would let anyone who reads it forge deliveries.
    exclude = ["secret"]
    list_display = ["id", "project", "url", "is_active", "created_at"]
    list_filter = ["is_active"]
    list_select_related = ["project"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "webhook",
        "event",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
    ]
    list_filter = ["status", "event"]
    list_select_related = ["webhook"]
