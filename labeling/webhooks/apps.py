from __future__ import annotations

from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "labeling.webhooks"
    label = "webhooks"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: models and receivers load once the app registry is.
        from labeling.core.background import background_register
        from labeling.webhooks import receivers  # noqa: F401  (connects them)
        from labeling.webhooks.delivery import Deliverer

        # Deliveries go out from the worker process, not from web requests.
        background_register(name="webhook deliveries", factory=Deliverer)
