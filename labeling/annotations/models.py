from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.images.models import Image


class AnnotationSource(models.TextChoices):
    MANUAL = "manual", "Labeled in LabelLoop"
    IMPORT = "import", "Imported with the image"
    RESOLUTION = "resolution", "Set by a project admin to resolve a disagreement"


class Annotation(models.Model):
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="annotations")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="annotations"
    )
    label = models.CharField(max_length=100)
    # Idempotency key chosen by the client: a replay returns the same row.
    client_id = models.UUIDField(unique=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    source = models.CharField(
        max_length=16, choices=AnnotationSource.choices, default=AnnotationSource.MANUAL
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=[s.value for s in AnnotationSource]),
                name="annotation_source",
            ),
        ]
        indexes = [
            models.Index(
                fields=["image", "annotator", "-created_at"], name="annotation_image_user"
            ),
            models.Index(fields=["annotator", "-created_at"], name="annotation_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.label} on {self.image_id} by {self.annotator_id}"
