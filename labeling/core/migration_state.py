"""Is the database's schema current? Long-running commands check before they start, so a fresh
database gets a sentence that names the fix instead of a traceback about a missing table."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor


def unapplied_migrations(alias: str = DEFAULT_DB_ALIAS) -> list[str]:
    """``app.name`` of each migration the database has not applied, in order."""
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _ in plan]


def require_migrated(alias: str = DEFAULT_DB_ALIAS) -> None:
    pending = unapplied_migrations(alias)
    if pending:
        shown = ", ".join(pending[:3]) + (
            f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        )
        raise CommandError(
            f"the database has {len(pending)} unapplied migration(s) ({shown}): "
            "run `python manage.py migrate` first"
        )
