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


class LeaseLog(models.Model):
    """Every lease handed out, and when it ended: throughput analytics and audits
    (the concurrency tests check from it that no image was held by two people at once)."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    leased_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    # When it was given back: by a submission or a release; null while open or if it expired.
    ended_at = models.DateTimeField(null=True, blank=True)
    exploration = models.BooleanField(default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["image", "user"], condition=Q(ended_at__isnull=True), name="leaselog_open"
            )
        ]

    def __str__(self) -> str:
        return f"lease of {self.image_id} to {self.user_id} at {self.leased_at:%Y-%m-%d %H:%M:%S}"
