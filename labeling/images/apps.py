from __future__ import annotations

from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "labeling.images"
    label = "images"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: models and receivers load once the app registry is.
        from labeling.core.backup import backup_count_register
        from labeling.core.storage import store_reference_register
        from labeling.images import receivers  # noqa: F401  (connects them)
        from labeling.images.models import Image

        store_reference_register(model=Image, field="storage_key", prefix="images")
        backup_count_register(name="images", model=Image)
