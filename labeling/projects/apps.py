from __future__ import annotations

from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "labeling.projects"
    label = "projects"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: models load once the app registry is.
        from labeling.core.backup import backup_count_register
        from labeling.projects.models import Membership, Project

        backup_count_register(name="projects", model=Project)
        backup_count_register(name="memberships", model=Membership)
