from __future__ import annotations

from django.contrib import admin

from labeling.core.admin_base import ReadOnlyAdmin
from labeling.learning.models import Backbone, ModelVersion, TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "trigger", "lane", "status", "stage", "progress", "created_at"]
    list_filter = ["status", "trigger", "lane"]
    list_select_related = ["project"]
    search_fields = ["project__name", "worker", "error"]


@admin.register(ModelVersion)
class ModelVersionAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "number", "architecture", "labels_used", "is_active"]
    list_filter = ["is_active", "architecture"]
    list_select_related = ["project"]


@admin.register(Backbone)
class BackboneAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "number", "source", "arch", "embed_dim", "created_at"]
    list_filter = ["source", "arch"]
    list_select_related = ["project"]
