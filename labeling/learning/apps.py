from __future__ import annotations

from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "labeling.learning"
    label = "learning"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: models and receivers load once the app registry is.
        from labeling.core.backup import backup_count_register
        from labeling.core.storage import store_reference_register
        from labeling.learning import receivers  # noqa: F401  (connects them)
        from labeling.learning.models import Backbone, ModelExport, ModelVersion, TrainingRun

        store_reference_register(model=ModelVersion, field="checkpoint_key", prefix="models")
        store_reference_register(model=Backbone, field="file_key", prefix="backbones")
        store_reference_register(model=ModelExport, field="file_key", prefix="exports")
        backup_count_register(name="training_runs", model=TrainingRun)
        backup_count_register(name="model_versions", model=ModelVersion)
        backup_count_register(name="backbones", model=Backbone)
