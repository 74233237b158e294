from __future__ import annotations

from django.db import migrations

from labeling.core.db_cascade import CascadeInDatabase


class Migration(migrations.Migration):
    """An image's score goes with the image in the database (a project's deletion)."""

    dependencies = [
        ("learning", "0004_run_trigger_new_images"),
        ("images", "0002_image_image_project_id"),
    ]

    operations = [CascadeInDatabase("learning", "ImageScore", "image")]
