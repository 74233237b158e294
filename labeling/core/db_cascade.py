"""Foreign keys that PostgreSQL itself cascades: a migration operation.

Deleting a project deletes its images in one statement (``images.receivers``); the rows of
higher apps that hang off an image (annotations, leases, scores, queued webhook events) go
with them through ``ON DELETE CASCADE`` in the database, instead of Django's cascade, which
would load every related row into memory first. Django 5.2 cannot declare that on a field, so
each app that owns such a foreign key adds it to the constraint with this operation in a
migration (``test_project_delete`` checks the constraints in a real database).
"""

from __future__ import annotations

from django.db import migrations

_FIND = """
SELECT c.conname FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)
WHERE c.contype = 'f' AND c.conrelid = %s::regclass AND a.attname = %s
"""


def _recreate(app_label: str, model_name: str, field_name: str, *, cascade: bool):
    def run(apps, schema_editor) -> None:
        model = apps.get_model(app_label, model_name)
        field = model._meta.get_field(field_name)
        table, column = model._meta.db_table, field.column
        target = field.remote_field.model._meta
        target_column = target.get_field(field.remote_field.field_name).column
        q = schema_editor.quote_name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(_FIND, [table, column])
            [(name,)] = cursor.fetchall()
            # Names from the models' metadata and the catalogue, quoted as identifiers.
            cursor.execute(f"ALTER TABLE {q(table)} DROP CONSTRAINT {q(name)}")
            cursor.execute(
                f"ALTER TABLE {q(table)} ADD CONSTRAINT {q(name)} FOREIGN KEY ({q(column)}) "
                f"REFERENCES {q(target.db_table)} ({q(target_column)})"
                + (" ON DELETE CASCADE" if cascade else "")
                + " DEFERRABLE INITIALLY DEFERRED"
            )

    return run


def CascadeInDatabase(app_label: str, model_name: str, field_name: str) -> migrations.RunPython:
    """A migration operation: ``model_name.field_name``'s foreign key cascades deletes in
    PostgreSQL (reversible)."""
    return migrations.RunPython(
        _recreate(app_label, model_name, field_name, cascade=True),
        _recreate(app_label, model_name, field_name, cascade=False),
    )
