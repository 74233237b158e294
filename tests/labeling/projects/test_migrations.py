"""Migration 0003 adds the case-insensitive name constraint without failing on projects
that already share a name."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from labeling.projects.models import Project

BEFORE = [("projects", "0002_label_renames")]
AFTER = [("projects", "0003_project_name_unique_ci")]


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def migrate_to_latest() -> None:
    """Every app's newest migration: going back to BEFORE also unapplied the migrations of
    other apps that depend on projects 0003 (learning 0006 on), and the tests after this one
    need them."""
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_projects_that_share_a_name_in_any_case_get_their_id_appended():
    migrate(BEFORE)
    try:
        with connection.cursor() as cursor:
            for name, slug in [("Digits", "a"), ("DIGITS", "b"), ("digits", "c"), ("Other", "d")]:
                cursor.execute(
                    "INSERT INTO projects_project (name, slug, description, labels, "
                    "label_renames, input_size, input_channels, annotations_per_image, "
                    "strategy, retrain_every, exploration_fraction, lease_seconds, "
                    "show_suggestions, created_at, updated_at) VALUES (%s, %s, '', "
                    "ARRAY['a','b'], '[]', 28, 1, 1, 'random', 0, 0, 600, false, now(), now())",
                    [name, slug],
                )
    finally:
        migrate(AFTER)
        migrate_to_latest()
    names = dict(Project.objects.values_list("slug", "name"))
    ids = dict(Project.objects.values_list("slug", "id"))
    assert names == {
        "a": "Digits",
        "b": f"DIGITS ({ids['b']})",
        "c": f"digits ({ids['c']})",
        "d": "Other",
    }
