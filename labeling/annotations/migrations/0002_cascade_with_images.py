from __future__ import annotations

from django.db import migrations

from labeling.core.db_cascade import CascadeInDatabase


class Migration(migrations.Migration):
    """Annotations and leases go with their image in the database (a project's deletion)."""

    dependencies = [("annotations", "0001_initial"), ("images", "0002_image_image_project_id")]

    operations = [
        CascadeInDatabase("annotations", "Annotation", "image"),
        CascadeInDatabase("annotations", "LeaseLog", "image"),
    ]
