"""Gold questions and annotator quality: ``POST/DELETE /api/images/{id}/gold/`` (project
admins), ``GET /api/projects/{id}/annotators/`` (project admins and reviewers)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.annotations import gold, quality
from labeling.core.parsers import JSONParser
from labeling.core.schema import ErrorSerializer
from labeling.images.api import ImageSerializer
from labeling.images.selectors import image_get_for_user
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class GoldSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100, help_text="the known answer: a class now")


class GoldView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=GoldSerializer,
        responses={200: ImageSerializer, 400: ErrorSerializer},
        summary="Make the image a gold question with this known answer (labeled with it)",
    )
    def post(self, request: Request, image_id: int) -> Response:
        image = image_get_for_user(user=request.user, image_id=image_id, role=Role.ADMIN)
        body = GoldSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = gold.gold_mark(image=image, label=body.validated_data["label"])
        return Response(ImageSerializer(image, context={"mask_gold": False}).data)

    @extend_schema(
        request=None,
        responses={200: ImageSerializer},
        summary="An ordinary image again: judged from its votes (its answers stay on record)",
    )
    def delete(self, request: Request, image_id: int) -> Response:
        image = image_get_for_user(user=request.user, image_id=image_id, role=Role.ADMIN)
        image = gold.gold_mark(image=image, label=None)
        return Response(ImageSerializer(image, context={"mask_gold": False}).data)


class AnnotatorQualitySerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField(allow_null=True, help_text="null: no longer a member")
    labels = serializers.IntegerField(help_text="their counted votes")
    gold_answered = serializers.IntegerField()
    gold_correct = serializers.IntegerField()
    gold_accuracy = serializers.FloatField(allow_null=True)
    gold_accuracy_low = serializers.FloatField(allow_null=True, help_text="95% Wilson interval")
    gold_accuracy_high = serializers.FloatField(allow_null=True)
    agreement = serializers.FloatField(
        allow_null=True, help_text="share of their votes equal to the consensus (2+ votes)"
    )
    agreement_n = serializers.IntegerField()
    judged_wrong = serializers.IntegerField()
    judged_wrong_share = serializers.FloatField(allow_null=True)
    median_seconds = serializers.FloatField(allow_null=True)
    reliability = serializers.FloatField(allow_null=True)


class AnnotatorsSerializer(serializers.Serializer):
    consensus_method = serializers.CharField()
    results = AnnotatorQualitySerializer(many=True)


class ProjectAnnotatorsView(APIView):
    @extend_schema(
        responses=AnnotatorsSerializer,
        summary="Annotator quality: gold accuracy, agreement, labels judged wrong, speed",
    )
    def get(self, request: Request, project_id: int) -> Response:
        # Reviewers (they judge labels) and admins.
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.REVIEWER)
        return Response(quality.annotator_quality(project=project))
