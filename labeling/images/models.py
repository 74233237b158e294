from __future__ import annotations

import random

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.projects.models import Project


class ImageStatus(models.TextChoices):
    UNLABELED = "unlabeled", "Unlabeled"  # no annotation yet
    PARTIAL = "partial", "Needs more annotations"  # below annotations_per_image, or a tie
    DISPUTED = "disputed", "Disputed"  # still tied at the cap; waits for a project admin
    LABELED = "labeled", "Labeled"  # consensus reached


def new_random_key() -> float:
    return random.random()


# Statuses whose images are served to annotators (the partial indexes cover exactly these).
QUEUE_STATUSES = (ImageStatus.UNLABELED, ImageStatus.PARTIAL)
_QUEUE = Q(status__in=[s.value for s in QUEUE_STATUSES])


class Image(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    sha256 = models.CharField(max_length=64)
    # Content-addressed key in the image store: images/ab/cd/<sha256>.<ext>
    storage_key = models.CharField(max_length=300)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    mode = models.CharField(max_length=16)  # Pillow mode of the original: L, RGB, RGBA, P, ...
    format = models.CharField(max_length=8)  # PNG, JPEG, WEBP, BMP, GIF, TIFF
    original_name = models.CharField(max_length=500)
    size_bytes = models.PositiveBigIntegerField()
    status = models.CharField(
        max_length=16, choices=ImageStatus.choices, default=ImageStatus.UNLABELED
    )
    # Queue order, higher first; written by the cold-start ordering and the learning loop.
    priority = models.FloatField(default=0.0)
    annotation_count = models.PositiveSmallIntegerField(default=0)  # distinct annotators
    consensus_label = models.CharField(max_length=100, null=True, blank=True)
    # Share of annotators who gave the consensus label (1.0 = unanimous).
    agreement = models.FloatField(null=True, blank=True)
    # The active model's view, written in bulk by the worker.
    predicted_label = models.CharField(max_length=100, null=True, blank=True)
    confidence = models.FloatField(null=True, blank=True)
    uncertainty = models.FloatField(null=True, blank=True)
    # A gold question: the known answer an admin gave. The image is labeled with it, and the
    # queue mixes it into annotators' tasks (Project.gold_rate) to measure them; their answers
    # are GoldAnswer rows, never labels.
    gold_label = models.CharField(max_length=100, null=True, blank=True)
    # Uniform random key, fixed at ingest: breaks priority ties in random order (the cold-start
    # order before any model) and lets the exploration slice sample the pool from an index.
    random_key = models.FloatField(default=new_random_key)
    # Set once the image was served through the random exploration slice: its labels give
    # an unbiased evaluation set.
    in_random_slice = models.BooleanField(default=False)
    # The current lease: one annotator at a time holds an image until lease_expires.
    leased_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lease_expires = models.DateTimeField(null=True, blank=True)
    lease_exploration = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "sha256"], name="image_unique_per_project"),
            models.CheckConstraint(
                condition=Q(sha256__regex=r"^[0-9a-f]{64}$"), name="image_sha256_hex"
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in ImageStatus]), name="image_status"
            ),
            models.CheckConstraint(condition=Q(width__gt=0) & Q(height__gt=0), name="image_dims"),
        ]
        indexes = [
            models.Index(fields=["project", "status"], name="image_project_status"),
            models.Index(fields=["project", "-created_at", "-id"], name="image_project_created"),
            # Keyset pagination in id order within a project (exports read 2,000 at a time).
            models.Index(fields=["project", "id"], name="image_project_id"),
            # The queue: best first, within the images that still need annotations.
            models.Index(
                fields=["project", "-priority", "random_key"], condition=_QUEUE, name="image_queue"
            ),
            # Grid pages (learning/grid.py): the pool's surest images first.
            models.Index(fields=["project", "-confidence"], condition=_QUEUE, name="image_surest"),
            # The exploration slice: a uniform sample of the same pool.
            models.Index(fields=["project", "random_key"], condition=_QUEUE, name="image_explore"),
            # The gold questions of a project (a few among many images).
            models.Index(
                fields=["project", "random_key"],
                condition=Q(gold_label__isnull=False),
                name="image_gold",
            ),
            models.Index(
                fields=["leased_to", "lease_expires"],
                condition=Q(leased_to__isnull=False),
                name="image_leases",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.sha256[:12]})"
