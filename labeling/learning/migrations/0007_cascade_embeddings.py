from __future__ import annotations

from django.db import migrations

from labeling.core.db_cascade import CascadeInDatabase


class Migration(migrations.Migration):
    """An image's embedding goes with the image in the database (a project's deletion). Its
    own migration: the foreign key of a table created in 0006 exists only once 0006 ends."""

    dependencies = [("learning", "0006_backbones")]

    operations = [CascadeInDatabase("learning", "ImageEmbedding", "image")]
