from __future__ import annotations

from django.apps import AppConfig


class LearningConfig(AppConfig):
    name = "labeling.learning"
    label = "learning"
    default_auto_field = "django.db.models.BigAutoField"
