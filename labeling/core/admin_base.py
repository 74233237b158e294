"""The Django admin's view of LabelLoop's data: read-only, for staff.

Every write goes through the services (their rules, locks and domain events) by the API or
the web UI; an edit in the Django admin would skip them, so each app's ``admin.py`` registers
its models with ``ReadOnlyAdmin``: lists with filters and search, details, no add, change or
delete. Staff see them without per-model permissions (``is_staff`` is the whole test), and
lists never count a huge table (``show_full_result_count``). Tested by
tests/labeling/core/test_admin.py.
"""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    show_full_result_count = False  # "N total" is a COUNT(*) over the whole table
    list_per_page = 50

    def get_readonly_fields(self, request, obj=None):
        return [
            field.name
            for field in self.model._meta.fields
            if field.name not in self.exclude_fields()
        ]

    def exclude_fields(self) -> tuple[str, ...]:
        return tuple(self.exclude or ())

    def has_view_permission(self, request, obj=None) -> bool:
        return bool(request.user.is_active and request.user.is_staff)

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
