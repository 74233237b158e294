from __future__ import annotations

from django.db import migrations

from labeling.core.db_cascade import CascadeInDatabase


class Migration(migrations.Migration):
    """A queued image.labeled event goes with its image in the database (a project's
    deletion)."""

    dependencies = [("webhooks", "0001_initial"), ("images", "0002_image_image_project_id")]

    operations = [CascadeInDatabase("webhooks", "WebhookLabelEvent", "image")]
