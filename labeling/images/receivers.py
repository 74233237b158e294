"""How images react to changes owned by lower apps (``labeling.core.events``); connected in
``ImagesConfig.ready()``."""

from __future__ import annotations

from django.db import connection
from django.db.models.functions import Now
from django.dispatch import receiver

from labeling.core import events
from labeling.images.models import Image


@receiver(events.class_renamed, dispatch_uid="images.rename_labels")
def rename_labels(sender, *, project, old: str, new: str, **_) -> None:
    """Consensus labels, gold labels and predictions that name the class take its new name,
    under the rename's lock."""
    images = Image.objects.filter(project=project)
    images.filter(consensus_label=old).update(consensus_label=new, updated_at=Now())
    images.filter(gold_label=old).update(gold_label=new, updated_at=Now())
    images.filter(predicted_label=old).update(predicted_label=new, updated_at=Now())


@receiver(events.project_deleted, dispatch_uid="images.delete_images")
def delete_images(sender, *, project, **_) -> None:
    """The project's images, in one statement; what hangs off an image in higher apps
    (annotations, leases, scores, queued webhook events) goes with it through the database's
    ON DELETE CASCADE (``labeling.core.db_cascade``). Files stay in the store for
    ``manage.py sweep_store``: another project may use the same content."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM images_image WHERE project_id = %s", [project.pk])
