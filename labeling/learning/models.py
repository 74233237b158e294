from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from labeling.images.models import Image
from labeling.projects.models import Project


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class RunTrigger(models.TextChoices):
    MANUAL = "manual", "Requested by an admin"
    AUTOMATIC = "automatic", "retrain_every new labels arrived"
    ACTIVATION = (
        "activation",
        "Re-score the queue with a version: activated, or active when the strategy changed",
    )
    COLD_START = "cold_start", "Images arrived and no model exists: order the queue for coverage"
    NEW_IMAGES = (
        "new_images",
        "Images arrived in a project with a model: score them with it and slot them in",
    )
    PRETRAIN = "pretrain", "Learn a backbone from every image of the project (self-supervised)"
    BACKBONE_IMPORT = "backbone_import", "Import pretrained backbone weights (ImageNet, ...)"
    LABEL_CHECK = (
        "label_check",
        "Find labels likely wrong (confident learning over cross-fitted predictions)",
    )
    FINE_TUNE = (
        "fine_tune",
        "Train every layer of the model a round fitted on a backbone's frozen features",
    )


class RunLane(models.TextChoices):
    """Runs of one lane of a project go one at a time; the lanes run side by side, so a long
    pretraining (background) never holds up the rounds that keep the queue fresh (main)."""

    MAIN = "main", "Rounds and queue ordering"
    BACKGROUND = "background", "Backbones: pretraining and imports"


# Which lane a run kind belongs to.
BACKGROUND_TRIGGERS = (RunTrigger.PRETRAIN, RunTrigger.BACKBONE_IMPORT)
# Runs that follow a round by themselves and give way while queued: any other run of the lane
# takes a queued one's place (``runs.run_request``), and the round's end queues it again.
FOLLOW_UPS = (RunTrigger.LABEL_CHECK, RunTrigger.FINE_TUNE)


def lane_of(trigger: str) -> str:
    return RunLane.BACKGROUND if trigger in BACKGROUND_TRIGGERS else RunLane.MAIN


class TrainingRun(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="training_runs")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    lane = models.CharField(max_length=16, choices=RunLane.choices, default=RunLane.MAIN)
    # What the run kind needs beyond the project (pretraining: minutes, epochs; an import:
    # where the weights are).
    params = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    stage = models.CharField(max_length=32, blank=True, default="")
    progress = models.FloatField(default=0.0)  # 0..1 within the whole run
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # For ACTIVATION runs: the version whose predictions re-score the queue (none: the version
    # active when the run starts; a strategy change).
    source_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    labels_snapshot = models.PositiveIntegerField(default=0)  # consensus labels trained on
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)  # claims, counting re-queues
    worker = models.CharField(max_length=200, blank=True, default="")  # host:pid
    error = models.TextField(blank=True, default="")
    metrics = models.JSONField(default=dict, blank=True)
    stage_seconds = models.JSONField(default=dict, blank=True)  # wall time of each stage
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # Never two queued runs, nor two running runs, in one lane of a project.
            models.UniqueConstraint(
                fields=["project", "lane"], condition=Q(status="queued"), name="run_one_queued"
            ),
            models.UniqueConstraint(
                fields=["project", "lane"], condition=Q(status="running"), name="run_one_running"
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in RunStatus]), name="run_status"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1), name="run_progress"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="run_claim"),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.project_id}: {self.status}"


class Backbone(models.Model):
    """A feature extractor a project's rounds build on: learned from its own images
    (``pretrain`` runs) or imported (``backbone_import`` runs). Rounds use the newest one."""

    class Source(models.TextChoices):
        PRETRAIN = "pretrain", "Self-supervised on the project's images"
        IMPORT = "import", "Imported weights"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="backbones")
    run = models.OneToOneField(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="backbone"
    )
    number = models.PositiveIntegerField()  # 1, 2, 3 ... within the project
    source = models.CharField(max_length=16, choices=Source.choices)
    origin = models.CharField(max_length=500, blank=True, default="")  # file name or URL
    file_key = models.CharField(max_length=300)  # the backbone file, in the object store
    file_sha256 = models.CharField(max_length=64)
    arch = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    stem = models.CharField(max_length=16)
    input_size = models.PositiveIntegerField()
    embed_dim = models.PositiveIntegerField()
    images_seen = models.PositiveIntegerField(default=0)  # images it was trained on (pretrain)
    # method, epochs, seconds, loss_curve, probe (k-NN and linear accuracy on the labels so far)
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="backbone_number"),
        ]

    def __str__(self) -> str:
        return f"backbone {self.number} of {self.project_id}"


class ImageEmbedding(models.Model):
    """One image's features, float16 bytes: from the project's newest backbone (head fits,
    cold start, similarity), rewritten when a newer backbone is registered; or, in a project
    without a backbone, the active model's penultimate features, written by its scoring pass
    (similarity search only)."""

    image = models.OneToOneField(Image, primary_key=True, on_delete=models.CASCADE)
    backbone = models.ForeignKey(
        Backbone, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    vector = models.BinaryField()  # float16, little-endian, embed_dim values

    class Meta:
        constraints = [
            # From a backbone or from a model, never both nor neither.
            models.CheckConstraint(
                condition=Q(backbone__isnull=True) ^ Q(model_version__isnull=True),
                name="embedding_one_source",
            ),
        ]

    def __str__(self) -> str:
        source = f"backbone {self.backbone_id}" if self.backbone_id else f"v{self.model_version_id}"
        return f"embedding of {self.image_id} by {source}"


class SimilarIndex(models.Model):
    """A project's nearest-neighbour index over its embeddings (``learning/similar.py``): a
    pgvector HNSW index on a table of the project's own (``similar_p<project id>``), built by
    the worker when the embeddings change. This row says which vectors it holds."""

    project = models.OneToOneField(Project, primary_key=True, on_delete=models.CASCADE)
    backbone = models.ForeignKey(
        Backbone, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dim = models.PositiveIntegerField()
    size = models.PositiveIntegerField()  # vectors in the index
    build_seconds = models.FloatField()  # the last full build or refresh, wall time
    built_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"similarity index of {self.project_id}: {self.size} vectors"


class EmbeddingMap(models.Model):
    """A 2-D projection of a project's embeddings for the dashboard's map (PCA of a sample of
    at most ``embedding_map.MAP_POINTS`` vectors), computed by the worker when they change."""

    project = models.OneToOneField(Project, primary_key=True, on_delete=models.CASCADE)
    backbone = models.ForeignKey(
        Backbone, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    model_version = models.ForeignKey(
        "ModelVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    method = models.CharField(max_length=16, default="pca")
    total = models.PositiveIntegerField()  # vectors of the source when it was computed
    # {"id": [...], "x": [...], "y": [...]}: x and y scaled to 0..1, 4 decimals
    points = models.JSONField()
    explained = models.JSONField(default=list)  # variance share of each of the two axes
    built_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"embedding map of {self.project_id}: {len(self.points.get('id', []))} points"


class ModelVersion(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    # One version per run: a run finished by a second worker after the first one died finds
    # the version already registered instead of making another.
    run = models.OneToOneField(TrainingRun, on_delete=models.CASCADE, related_name="model_version")
    number = models.PositiveIntegerField()  # 1, 2, 3 ... within the project
    checkpoint_key = models.CharField(max_length=300)  # in the image store
    architecture = models.CharField(max_length=64)
    config = models.JSONField(default=dict)
    metrics = models.JSONField(default=dict)
    labels_used = models.PositiveIntegerField()
    is_active = models.BooleanField(default=False)
    # The backbone whose frozen features the model's head was fitted on (None: trained from
    # scratch).
    backbone = models.ForeignKey(
        Backbone, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.UniqueConstraint(fields=["project", "number"], name="version_number"),
            models.UniqueConstraint(
                fields=["project"], condition=Q(is_active=True), name="version_one_active"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.number} of {self.project_id}"


class ImageScore(models.Model):
    """The active model's view of one image, replaced in bulk after each scoring."""

    image = models.OneToOneField(Image, primary_key=True, on_delete=models.CASCADE)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    predicted = models.PositiveSmallIntegerField()  # class index
    confidence = models.FloatField()
    probabilities = ArrayField(models.FloatField())
    score = models.FloatField()  # acquisition score, higher = more informative

    def __str__(self) -> str:
        return f"score of {self.image_id} by v{self.model_version_id}"


class PredictionRequest(models.Model):
    """A predict call handed from the web process to a worker through the database (the web
    process never imports torch): the worker LISTENs, answers, and the web side reads it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    images = models.JSONField()  # [{"name": ..., "data": base64}], capped by the API
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="prediction_pending"
            )
        ]

    def __str__(self) -> str:
        return f"prediction {self.pk}: {self.status}"


class ModelExport(models.Model):
    """A model version as a file for use outside LabelLoop (ONNX or TorchScript, float32 or
    int8), made by a worker (the web process never imports torch: ``model_exports`` asks,
    ``export_server`` makes it) and kept in the object store, one per version, format and
    quantization, so a second download reuses the file. Goes with its version."""

    class Status(models.TextChoices):
        PENDING = "pending"
        READY = "ready"
        FAILED = "failed"

    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="exports"
    )
    format = models.CharField(max_length=16)  # "onnx" or "torchscript" (model_exports.FORMATS)
    quantize = models.CharField(max_length=8, blank=True, default="")  # "" (float32) or "int8"
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    file_key = models.CharField(max_length=300, blank=True, default="")  # once ready
    size_bytes = models.BigIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)  # as stored in the file
    error = models.TextField(blank=True, default="")
    seconds = models.FloatField(null=True, blank=True)  # the worker's time to make it
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "format", "quantize"], name="export_one_per_kind"
            ),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="export_pending"
            )
        ]

    def __str__(self) -> str:
        kind = f"{self.format}-{self.quantize}" if self.quantize else self.format
        return f"export {kind} of version {self.model_version_id}: {self.status}"


class Explanation(models.Model):
    """A class-activation map of one image by one model version: asked for by the web side
    (``explanations``: a pending row and a NOTIFY), drawn by a worker (``explain_server``, with
    the version loaded in-process), then kept as the cache for that (image, version). It goes
    with the image or the version: the map is in the row, so no file can outlive it."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        FAILED = "failed"

    image = models.ForeignKey(Image, on_delete=models.CASCADE, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    # RGBA PNG of the map over the image itself (letterbox cut off), at the model's resolution.
    png = models.BinaryField(null=True, blank=True)
    label = models.CharField(max_length=100, blank=True, default="")  # the class explained
    probability = models.FloatField(null=True, blank=True)  # the model's, for that class
    border_share = models.FloatField(null=True, blank=True)  # map mass in the border band
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["image", "model_version"], name="explanation_once")
        ]
        indexes = [
            models.Index(
                fields=["created_at"], condition=Q(status="pending"), name="explanation_pending"
            )
        ]

    def __str__(self) -> str:
        return f"explanation of {self.image_id} by v{self.model_version_id}: {self.status}"
