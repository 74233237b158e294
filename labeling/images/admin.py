from __future__ import annotations

from django.contrib import admin

from labeling.core.admin_base import ReadOnlyAdmin
from labeling.images.models import Image


@admin.register(Image)
class ImageAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "project",
        "original_name",
        "status",
        "consensus_label",
        "predicted_label",
        "uncertainty",
        "created_at",
    ]
    list_filter = ["status"]
    list_select_related = ["project"]
    search_fields = ["original_name", "sha256"]
