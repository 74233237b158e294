"""Training runs, the model registry and predict_requests.

``/api/projects/{id}/training-runs/``, ``/api/training-runs/{id}/`` (+ ``cancel/``),
``/api/projects/{id}/model-versions/``, ``/api/model-versions/{id}/activate/``,
``/api/projects/{id}/predict/``.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from labeling.annotations.selectors import annotation_stats
from labeling.core.errors import NotFound, ValidationFailed
from labeling.core.parsers import JSONParser
from labeling.core.schema import ErrorSerializer
from labeling.images.selectors import gold_masked
from labeling.learning import predict_requests, runs, selectors
from labeling.learning.models import Backbone, ModelVersion, RunTrigger, TrainingRun
from labeling.learning.services import backbone_request, label_check_request
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class RunWaitSerializer(serializers.Serializer):
    reason = serializers.ChoiceField(
        ["project_busy", "worker_busy", "no_worker", "starting"],
        help_text="project_busy: this project's other run in the lane goes first; worker_busy: "
        "runs of other projects run or are ahead in line; no_worker: nothing picked it up "
        "within the worker's stale time; starting: a worker picks it up in a moment",
    )
    position = serializers.IntegerField(help_text="its place in the lane's line, 1 = next")
    ahead = serializers.IntegerField(help_text="queued runs of the lane that go first")
    running_elsewhere = serializers.IntegerField(help_text="runs of other projects running now")
    waited_seconds = serializers.IntegerField()
    message = serializers.CharField()


class TrainingRunSerializer(serializers.ModelSerializer):
    model_version = serializers.SerializerMethodField()
    wait = serializers.SerializerMethodField()

    class Meta:
        model = TrainingRun
        fields = [
            "id",
            "project",
            "trigger",
            "lane",
            "status",
            "stage",
            "progress",
            "labels_snapshot",
            "attempts",
            "cancel_requested",
            "metrics",
            "stage_seconds",
            "error",
            "created_at",
            "started_at",
            "heartbeat_at",
            "finished_at",
            "model_version",
            "wait",
        ]

    @extend_schema_field(RunWaitSerializer(allow_null=True))
    def get_wait(self, run: TrainingRun) -> dict | None:
        """Why a queued run waits (null unless queued)."""
        return selectors.run_wait(run=run)

    def get_model_version(self, run: TrainingRun) -> int | None:
        version = getattr(run, "model_version", None)
        return version.number if version is not None else None


class BackboneRefSerializer(serializers.ModelSerializer):
    """The backbone whose features a model's head was fitted on."""

    class Meta:
        model = Backbone
        fields = ["id", "number", "source", "arch", "origin"]


class ModelVersionSerializer(serializers.ModelSerializer):
    backbone = BackboneRefSerializer(
        read_only=True, allow_null=True, help_text="null: trained from scratch"
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "number",
            "run",
            "architecture",
            "metrics",
            "labels_used",
            "is_active",
            "backbone",
            "created_at",
        ]


class RunRequestSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        ["train", "pretrain", "label_check"],
        default="train",
        help_text="train: a round now; pretrain: a self-supervised backbone (background lane); "
        "label_check: find labels likely wrong and put them in the review queue (main lane)",
    )
    minutes = serializers.FloatField(
        min_value=1, max_value=24 * 60, required=False, help_text="pretrain: time budget"
    )
    epochs = serializers.IntegerField(
        min_value=1, max_value=10_000, required=False, help_text="pretrain: at most this many"
    )

    def validate(self, data: dict) -> dict:
        extra = sorted({"minutes", "epochs"} & set(data))
        if data["kind"] != "pretrain" and extra:
            raise serializers.ValidationError(f"{', '.join(extra)}: only for kind 'pretrain'")
        return data


def _run_for(request: Request, run_id: int, role: str) -> TrainingRun:
    run = TrainingRun.objects.filter(pk=run_id).first()
    if run is None:
        raise NotFound("training run not found")
    try:
        project_get_for_user(user=request.user, project_id=run.project_id, role=role)
    except NotFound:
        raise NotFound("training run not found") from None
    return run


class ProjectRunsView(APIView):
    # JSON (or no body) only: a form's empty `kind=` would otherwise read as the default.
    parser_classes = [JSONParser]

    @extend_schema(responses=TrainingRunSerializer(many=True), summary="Training runs")
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.VIEWER)
        runs = selectors.run_list(project=project)[:100]
        return Response(TrainingRunSerializer(runs, many=True).data)

    @extend_schema(
        request=RunRequestSerializer,
        responses={202: TrainingRunSerializer, 409: ErrorSerializer},
        summary="Retrain now, pretrain a backbone, or check the labels (202; a run already "
        "queued in that lane is returned instead of a second one; 409 lane_busy: a label "
        "check asked while another kind of run is queued)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.ADMIN)
        form = RunRequestSerializer(data=request.data or {})
        form.is_valid(raise_exception=True)
        asked = form.validated_data
        if asked["kind"] == "pretrain":
            params = {k: asked[k] for k in ("minutes", "epochs") if k in asked}
            run, _ = backbone_request(
                project=project, trigger=RunTrigger.PRETRAIN, params=params, user=request.user
            )
        elif asked["kind"] == "label_check":
            run, _ = label_check_request(project=project, user=request.user)
        else:
            run, _ = runs.run_request(project=project, trigger=RunTrigger.MANUAL, user=request.user)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class RunDetailView(APIView):
    @extend_schema(responses=TrainingRunSerializer, summary="Status, progress, metrics, error")
    def get(self, request: Request, run_id: int) -> Response:
        return Response(TrainingRunSerializer(_run_for(request, run_id, Role.VIEWER)).data)


class RunCancelView(APIView):
    @extend_schema(
        request=None,
        responses={200: TrainingRunSerializer, 409: ErrorSerializer},
        summary="Cancel a run (409 when it has already finished)",
    )
    def post(self, request: Request, run_id: int) -> Response:
        run = runs.run_cancel(run=_run_for(request, run_id, Role.ADMIN))
        return Response(TrainingRunSerializer(run).data)


class ProjectVersionsView(APIView):
    @extend_schema(responses=ModelVersionSerializer(many=True), summary="Model registry")
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.VIEWER)
        return Response(
            ModelVersionSerializer(selectors.version_list(project=project), many=True).data
        )


class VersionActivateView(APIView):
    @extend_schema(
        request=None,
        responses={202: TrainingRunSerializer},
        summary="Make this version active (rollback); the queue is re-scored with it",
    )
    def post(self, request: Request, version_id: int) -> Response:
        version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
        if version is None:
            raise NotFound("model version not found")
        try:
            project_get_for_user(user=request.user, project_id=version.project_id, role=Role.ADMIN)
        except NotFound:
            raise NotFound("model version not found") from None
        run = runs.version_activate(version=version, user=request.user)
        return Response(TrainingRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class PredictView(APIView):
    parser_classes = [MultiPartParser]
    # Per user (DRF keys an authenticated caller by id): LABELLOOP_THROTTLE_PREDICT.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "predict"

    @extend_schema(
        request={
            "multipart/form-data": {
                "type": "object",
                "properties": {
                    "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                },
            }
        },
        responses={
            200: dict,
            409: ErrorSerializer,  # no trained model yet
            413: ErrorSerializer,  # too many files, bytes or pixels
            503: ErrorSerializer,  # no worker answered in time
        },
        summary="Class probabilities for uploaded images from the active model",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.VIEWER)
        files = request.FILES.getlist("files")
        if not files:
            raise ValidationFailed(
                "no files: send one or more parts named 'files'", code="no_files"
            )
        results = predict_requests.predict(project=project, files=files)
        return Response({"results": results})


class ProjectStatsView(APIView):
    """The dashboard's figures: the labeling side (annotations) and the model side (here)."""

    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Counts, class balance, throughput")
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.VIEWER)
        masked = gold_masked(user=request.user, project=project)
        return Response(
            {
                **selectors.learning_stats(project=project),
                **annotation_stats(project=project, mask_gold=masked),
            }
        )
