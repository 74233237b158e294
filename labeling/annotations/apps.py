from __future__ import annotations

from django.apps import AppConfig


class AnnotationsConfig(AppConfig):
    name = "labeling.annotations"
    label = "annotations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: models and receivers load once the app registry is.
        from labeling.annotations import receivers  # noqa: F401  (connects them)
        from labeling.annotations.models import Annotation
        from labeling.core.backup import backup_count_register

        backup_count_register(name="annotations", model=Annotation)
