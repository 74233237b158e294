from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower


class Strategy(models.TextChoices):
    RANDOM = "random", "Random order"
    LEAST_CONFIDENCE = "least_confidence", "Least confidence"
    MARGIN = "margin", "Smallest margin"
    ENTROPY = "entropy", "Entropy"
    BALD = "bald", "BALD (MC dropout)"
    DIVERSE = "diverse", "Uncertainty + diversity (robust default)"


class ConsensusMethod(models.TextChoices):
    WEIGHTED = "weighted", "Weighted by each annotator's measured reliability (Dawid-Skene)"
    MAJORITY = "majority", "Majority vote"


class Project(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    # Ordered class names; position i is the model's output i.
    labels = ArrayField(models.CharField(max_length=100))
    # Every class rename, oldest first: [[old, new], ...]. Append-only. A model keeps the class
    # names it was trained with; it records how many renames had happened by its snapshot
    # (ModelVersion.config["renames_seen"]) and the later ones translate its names.
    label_renames = models.JSONField(default=list, blank=True)
    input_size = models.PositiveIntegerField(default=28)  # pixels, square model input
    input_channels = models.PositiveSmallIntegerField(default=1)  # 1 = grayscale, 3 = RGB
    annotations_per_image = models.PositiveSmallIntegerField(default=1)
    strategy = models.CharField(max_length=32, choices=Strategy.choices, default=Strategy.DIVERSE)
    retrain_every = models.PositiveIntegerField(default=50)  # new consensus labels; 0 = off
    exploration_fraction = models.FloatField(default=0.1)  # share of tasks drawn at random
    lease_seconds = models.PositiveIntegerField(default=600)
    # Show the model's guess to annotators (Enter accepts it). Off by default: suggestions
    # anchor annotators and bias the labels the model then learns from.
    show_suggestions = models.BooleanField(default=False)
    # How the votes of several annotators (annotations_per_image > 1) become one label.
    consensus_method = models.CharField(
        max_length=16, choices=ConsensusMethod.choices, default=ConsensusMethod.WEIGHTED
    )
    # Share of an annotator's tasks that are gold questions (images with a known answer they
    # have not answered yet); 0 turns gold questions off.
    gold_rate = models.FloatField(default=0.05)
    # An annotator whose accuracy on gold falls below this (after enough gold answers) is
    # announced (webhook annotator.quality_low); 0 turns the alert off.
    gold_alert_accuracy = models.FloatField(default=0.7)
    # Rounds trained from scratch also learn from a sample of the images nobody labeled
    # (FixMatch: training/semi.py; LABELLOOP_SEMI_SUPERVISED_POOL images), at about five times
    # the training compute. Off until the product-level measurement says where it helps.
    semi_supervised = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            # "Digits" and "digits" are one name to people (services store names NFC, so
            # two spellings of "é" are one name too).
            models.UniqueConstraint(Lower("name"), name="project_name_unique_ci"),
            models.CheckConstraint(
                condition=Q(input_size__gte=8) & Q(input_size__lte=1024), name="project_input_size"
            ),
            models.CheckConstraint(condition=Q(input_channels__in=[1, 3]), name="project_channels"),
            models.CheckConstraint(
                condition=Q(annotations_per_image__gte=1) & Q(annotations_per_image__lte=15),
                name="project_annotations_per_image",
            ),
            models.CheckConstraint(
                condition=Q(exploration_fraction__gte=0) & Q(exploration_fraction__lte=1),
                name="project_exploration_fraction",
            ),
            models.CheckConstraint(
                condition=Q(gold_rate__gte=0) & Q(gold_rate__lte=0.5), name="project_gold_rate"
            ),
            models.CheckConstraint(
                condition=Q(gold_alert_accuracy__gte=0) & Q(gold_alert_accuracy__lte=1),
                name="project_gold_alert_accuracy",
            ),
            models.CheckConstraint(
                condition=Q(consensus_method__in=[m.value for m in ConsensusMethod]),
                name="project_consensus_method",
            ),
            models.CheckConstraint(
                condition=Q(lease_seconds__gte=10) & Q(lease_seconds__lte=86_400),
                name="project_lease_seconds",
            ),
            models.CheckConstraint(
                condition=Q(labels__len__gte=2) & Q(labels__len__lte=1000), name="project_labels"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    ANNOTATOR = "annotator", "Annotator"
    # An annotator who also decides the review queue (labels the model suspects are wrong).
    REVIEWER = "reviewer", "Reviewer"
    ADMIN = "admin", "Project admin"


# A role includes the powers of every role before it.
ROLE_RANK = {Role.VIEWER: 0, Role.ANNOTATOR: 1, Role.REVIEWER: 2, Role.ADMIN: 3}


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["project_id", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "user"], name="membership_unique"),
            models.CheckConstraint(
                condition=Q(role__in=[r.value for r in Role]), name="membership_role"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.project_id}:{self.role}"
