"""Project names unique ignoring case. Projects that already share a name (in any case) keep
the oldest's as it is; each later one gets its id appended, "Digits (7)", before the
constraint is added, so the migration never fails on existing data. PostgreSQL's lower()
decides the clashes, as it does for the constraint."""

import django.db.models.functions.text
from django.db import migrations, models

RENAME_CLASHES = """
UPDATE projects_project p
SET name = left(p.name, 200 - length(' (' || p.id || ')')) || ' (' || p.id || ')'
WHERE EXISTS (
    SELECT 1 FROM projects_project q WHERE lower(q.name) = lower(p.name) AND q.id < p.id
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0002_label_renames"),
    ]

    operations = [
        migrations.RunSQL(RENAME_CLASHES, migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name="project",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("name"), name="project_name_unique_ci"
            ),
        ),
    ]
