from __future__ import annotations

from django.apps import AppConfig


class ImagesConfig(AppConfig):
    name = "labeling.images"
    label = "images"
    default_auto_field = "django.db.models.BigAutoField"
