from __future__ import annotations

from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "labeling.exports"
    label = "exports"
    default_auto_field = "django.db.models.BigAutoField"
