from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from labeling.images.models import Image


class AnnotationSource(models.TextChoices):
    MANUAL = "manual", "Labeled in LabelLoop"
    IMPORT = "import", "Imported with the image"
    RESOLUTION = "resolution", "Set by a project admin to resolve a disagreement"
    REVIEW = "review", "Set by a reviewer deciding a suspect label"


class AnnotationView(models.TextChoices):
    """Where a label was given: the one-image annotator, or a page of alike images."""

    SINGLE = "single", "One image at a time"
    GRID = "grid", "A page of alike images (grid labeling)"


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
    # The annotator's view when it was given; a grid label's duration_ms is its share of the
    # page's time on screen. A database default: older rows and SQL inserts read "single".
    view = models.CharField(
        max_length=8,
        choices=AnnotationView.choices,
        default=AnnotationView.SINGLE,
        db_default=AnnotationView.SINGLE,
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when a reviewer sent the image back for fresh votes: the vote stays on record (who
    # said what, for annotator quality) but no longer counts toward the consensus.
    discarded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(source__in=[s.value for s in AnnotationSource]),
                name="annotation_source",
            ),
            models.CheckConstraint(
                condition=Q(view__in=[v.value for v in AnnotationView]), name="annotation_view"
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
    # Ended by a skip (a release): the queue does not serve the image to this user again for
    # a while (lease_log.SKIP_HOLD_SECONDS). A database default: the queue inserts in SQL.
    skipped = models.BooleanField(default=False, db_default=False)

    class Meta:
        indexes = [
            models.Index(
                fields=["image", "user"], condition=Q(ended_at__isnull=True), name="leaselog_open"
            ),
            models.Index(
                fields=["user", "image", "ended_at"],
                condition=Q(skipped=True),
                name="leaselog_skipped",
            ),
        ]

    def __str__(self) -> str:
        return f"lease of {self.image_id} to {self.user_id} at {self.leased_at:%Y-%m-%d %H:%M:%S}"


class GoldAnswer(models.Model):
    """An annotator's answer to a gold question (an image whose ``gold_label`` an admin set).
    Submitted through the same endpoint as any label, and never a label itself."""

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="gold_answers")
    annotator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gold_answers"
    )
    label = models.CharField(max_length=100)
    expected = models.CharField(max_length=100)  # the gold label when answered
    correct = models.BooleanField()
    client_id = models.UUIDField(unique=True)  # the submission's idempotency key
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["image", "annotator"], name="gold_answer_once"),
        ]
        indexes = [models.Index(fields=["annotator", "image"], name="gold_answer_user")]

    def __str__(self) -> str:
        return f"{self.label} (gold {self.expected}) on {self.image_id} by {self.annotator_id}"


class ReviewState(models.TextChoices):
    OPEN = "open", "Waiting for a reviewer"
    CONFIRMED = "confirmed", "The label was right"
    RELABELED = "relabeled", "The reviewer set another label"
    SENT_BACK = "sent_back", "Sent back to the queue for fresh votes"
    STALE = "stale", "The label changed before anyone reviewed it"


class LabelReview(models.Model):
    """A label the model suspects is wrong (confident learning over cross-fitted predictions,
    found by a ``label_check`` run), and what a reviewer decided about it."""

    project = models.ForeignKey(
        "projects.Project", on_delete=models.CASCADE, related_name="label_reviews"
    )
    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="reviews")
    state = models.CharField(max_length=16, choices=ReviewState.choices, default=ReviewState.OPEN)
    # How likely the label is wrong, 0..1 (1 - cleanlab's label quality score); the queue's
    # order, highest first.
    score = models.FloatField()
    given_label = models.CharField(max_length=100)  # the consensus label found suspect
    model_label = models.CharField(max_length=100)  # the cross-fitted model's class
    model_confidence = models.FloatField()  # its probability of model_label
    run_id = models.PositiveIntegerField(null=True, blank=True)  # the label_check run
    found_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    label_after = models.CharField(max_length=100, blank=True, default="")  # relabeled: the new
    # The decision's idempotency key: a replayed decision returns the review unchanged.
    decision_id = models.UUIDField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-score", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["image"], condition=Q(state="open"), name="label_review_one_open"
            ),
            models.CheckConstraint(
                condition=Q(state__in=[s.value for s in ReviewState]), name="label_review_state"
            ),
            models.CheckConstraint(
                condition=Q(score__gte=0) & Q(score__lte=1), name="label_review_score"
            ),
        ]
        indexes = [
            models.Index(fields=["project", "state", "-score"], name="label_review_queue"),
        ]

    def __str__(self) -> str:
        return f"review of {self.image_id} ({self.given_label}, {self.state})"


class ConsensusModel(models.Model):
    """A project's fitted model of its annotators (Dawid-Skene): the class prior and each
    annotator's confusion matrix, refitted from all counted votes; weighted consensus reads it.

    ``params``: {"classes": [...], "prior": [K floats], "annotators": {"<user id>":
    [[K floats] * K]}, "images": how many multi-vote images it was fitted on}.
    """

    project = models.OneToOneField(
        "projects.Project", on_delete=models.CASCADE, related_name="consensus_model"
    )
    params = models.JSONField(default=dict)
    fitted_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"consensus model of {self.project_id}"
