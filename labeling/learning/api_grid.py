"""Grid labeling over the API: ``POST /api/projects/{id}/tasks/grid/`` leases a page of alike
images with the class proposed for it (``labeling.learning.grid``), or answers ``grid: false``
with the reason, and the client labels single images (``tasks/next``) instead."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.annotations.api import TaskSerializer
from labeling.core.parsers import JSONParser
from labeling.core.schema import ErrorSerializer
from labeling.learning import grid as grids
from labeling.projects.api import JsonBooleanField
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class GridRequestSerializer(serializers.Serializer):
    size = serializers.IntegerField(
        min_value=grids.SIZE_MIN, max_value=grids.SIZE_MAX, default=grids.SIZE_DEFAULT
    )
    images = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        min_length=1,
        max_length=grids.SELECTION_MAX,
        required=False,
        help_text="a selection (the embedding map's lasso): lease those of these images that "
        "still need your label, whatever the model's confidence",
    )
    probe = JsonBooleanField(
        default=False,
        help_text="true: only say whether the queue would serve a page now (grid, reason, "
        "proposed), leasing nothing (the single view asks this now and then)",
    )

    prefetch = JsonBooleanField(
        default=False,
        help_text="true: the next page, asked for while one shows: none of the images already "
        "leased to you (the page on screen, a page whose labels are on their way) is on it",
    )

    def validate(self, attrs: dict) -> dict:
        if attrs.get("probe") and attrs.get("images"):
            raise serializers.ValidationError(
                {"probe": "a probe asks about the queue's page, not a selection: drop images"}
            )
        if attrs.get("prefetch") and (attrs.get("images") or attrs.get("probe")):
            other = "images" if attrs.get("images") else "probe"
            message = f"prefetch asks for the queue's next page: drop {other} or prefetch"
            raise serializers.ValidationError({"prefetch": message, other: message})
        return attrs


class GridTaskSerializer(TaskSerializer):
    confidence = serializers.FloatField(
        allow_null=True, help_text="the model's probability of its class (null: not shown)"
    )


class GridPageSerializer(serializers.Serializer):
    grid = serializers.BooleanField(help_text="false: no page worth serving; label singly")
    reason = serializers.ChoiceField(
        choices=["", *grids.MESSAGES], help_text="why there is no page (empty when there is)"
    )
    message = serializers.CharField(help_text="the reason in words, for people")
    proposed = serializers.CharField(
        allow_null=True, help_text="the class proposed for the page: each cell's first label"
    )
    min_confidence = serializers.FloatField(help_text="the confidence a page's images need")
    tasks = GridTaskSerializer(many=True)


class TaskGridView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=GridRequestSerializer,
        responses={
            200: GridPageSerializer,
            400: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
        summary="Lease a page of alike images to label at once, or say why there is none",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(
            user=request.user, project_id=project_id, role=Role.ANNOTATOR
        )
        body = GridRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        page = grids.grid_page_lease(
            project=project,
            user=request.user,
            size=body.validated_data["size"],
            images=body.validated_data.get("images"),
            probe=body.validated_data["probe"],
            prefetch=body.validated_data["prefetch"],
        )
        return Response(GridPageSerializer(page).data)
