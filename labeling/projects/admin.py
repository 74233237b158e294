from __future__ import annotations

from django.contrib import admin

from labeling.core.admin_base import ReadOnlyAdmin
from labeling.projects.models import Membership, Project


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    list_display = ["id", "name", "slug", "strategy", "annotations_per_image", "created_at"]
    list_filter = ["strategy", "consensus_method"]
    search_fields = ["name", "slug"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["id", "project", "user", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["project", "user"]
    search_fields = ["project__name", "user__username"]
