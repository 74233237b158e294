from __future__ import annotations

from django.db import migrations

from labeling.core.db_cascade import CascadeInDatabase


class Migration(migrations.Migration):
    """An image's activation maps go with the image in the database (a project's deletion,
    which deletes its images in one statement). Its own migration: the foreign key of a table
    created in 0009 exists only once 0009 ends."""

    dependencies = [("learning", "0011_explanations")]

    operations = [CascadeInDatabase("learning", "Explanation", "image")]
