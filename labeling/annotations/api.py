"""The labeling queue and annotations: next tasks, renew/release, submit, history, review,
and project statistics."""

from __future__ import annotations

import django_filters
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.annotations import selectors, services
from labeling.annotations.models import Annotation, AnnotationView
from labeling.core.parsers import JSONParser
from labeling.core.schema import ErrorSerializer
from labeling.images.api import ImageSerializer
from labeling.images.models import Image
from labeling.images.selectors import gold_masked, image_get_for_user
from labeling.projects.api import JsonBooleanField
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class TaskRequestSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=services.MAX_TASKS, default=1)


class TaskSerializer(serializers.Serializer):
    image = serializers.IntegerField(source="image_id")
    file_url = serializers.SerializerMethodField()
    lease_expires = serializers.DateTimeField()
    suggestion = serializers.CharField(allow_null=True)
    exploration = serializers.BooleanField()
    name = serializers.CharField(help_text="the file name the image was uploaded as")

    def get_file_url(self, task: services.Task) -> str:
        return reverse("image-file", args=[task.image_id])


class LeaseSerializer(serializers.Serializer):
    image = serializers.IntegerField(source="id")
    lease_expires = serializers.DateTimeField()


class AnnotationInSerializer(serializers.Serializer):
    image = serializers.IntegerField(min_value=1)
    label = serializers.CharField(max_length=100)
    client_id = serializers.UUIDField(help_text="idempotency key chosen by the client")
    duration_ms = serializers.IntegerField(
        min_value=0, max_value=86_400_000, required=False, allow_null=True
    )
    view = serializers.ChoiceField(
        choices=AnnotationView.choices,
        default=AnnotationView.SINGLE,
        help_text="where it was labeled: single (one image) or grid (a page of alike images; "
        "duration_ms is then the cell's share of the page's time)",
    )


class AnnotationSerializer(serializers.ModelSerializer):
    annotator = serializers.CharField(source="annotator.username")

    class Meta:
        model = Annotation
        fields = [
            "id",
            "image",
            "label",
            "client_id",
            "duration_ms",
            "source",
            "view",
            "annotator",
            "created_at",
            "discarded_at",
        ]
        extra_kwargs = {
            "discarded_at": {
                "help_text": "set when a reviewer sent the image back: the vote no longer counts"
            }
        }


class ResolveSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=100)


class TaskNextView(APIView):
    # JSON only: every field is optional, so a form body of garbage would read as "{}" and
    # lease a task instead of answering 415 (schemathesis found it).
    parser_classes = [JSONParser]

    @extend_schema(
        request=TaskRequestSerializer,
        responses=TaskSerializer(many=True),
        summary="Lease up to `count` images, best first (empty list when none is left)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(
            user=request.user, project_id=project_id, role=Role.ANNOTATOR
        )
        body = TaskRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        tasks = services.task_lease_next(
            project=project, user=request.user, count=body.validated_data["count"]
        )
        return Response(TaskSerializer(tasks, many=True).data)


class TaskRenewView(APIView):
    @extend_schema(
        request=None,
        responses={200: LeaseSerializer, 409: ErrorSerializer},
        summary=(
            "Extend my live lease; it never creates one (409 no_lease, lease_expired, "
            "lease_lost: another annotator holds it, not_needed)"
        ),
    )
    def post(self, request: Request, image_id: int) -> Response:
        image = image_get_for_user(user=request.user, image_id=image_id, role=Role.ANNOTATOR)
        return Response(LeaseSerializer(services.task_renew(image=image, user=request.user)).data)


class ReleaseSerializer(serializers.Serializer):
    skip = JsonBooleanField(
        default=True,
        help_text="true (default): a skip, the image is not served to you again for 8 hours; "
        "false: only give the lease back (prefetched tasks you will not show)",
    )


class TaskReleaseView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=ReleaseSerializer,
        responses={204: None, 409: ErrorSerializer},
        summary="Give the image back (a skip that sticks; 409 when you hold no lease on it)",
    )
    def post(self, request: Request, image_id: int) -> Response:
        body = ReleaseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        image = image_get_for_user(user=request.user, image_id=image_id, role=Role.ANNOTATOR)
        services.task_release(image=image, user=request.user, skip=body.validated_data["skip"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnnotationCreateView(APIView):
    @extend_schema(
        request=AnnotationInSerializer,
        responses={
            201: AnnotationSerializer,
            200: AnnotationSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
        summary=(
            "Submit a label (201; a replayed client_id answers 200 with the same row; 409 "
            "leased_to_another, not_needed)"
        ),
    )
    def post(self, request: Request) -> Response:
        body = AnnotationInSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        image = image_get_for_user(user=request.user, image_id=data["image"], role=Role.ANNOTATOR)
        submission = services.annotation_submit(
            image=image,
            user=request.user,
            label=data["label"],
            client_id=data["client_id"],
            duration_ms=data.get("duration_ms"),
            view=data["view"],
        )
        code = status.HTTP_201_CREATED if submission.created else status.HTTP_200_OK
        return Response(AnnotationSerializer(submission.annotation).data, status=code)


class AnnotationFilter(django_filters.FilterSet):
    user = django_filters.CharFilter(field_name="annotator__username")
    label = django_filters.CharFilter()
    image = django_filters.NumberFilter(field_name="image_id")

    class Meta:
        model = Annotation
        fields = ["user", "label", "image"]


class AnnotationPagination(CursorPagination):
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000
    ordering = "-id"


class ProjectAnnotationsView(generics.ListAPIView):
    serializer_class = AnnotationSerializer
    pagination_class = AnnotationPagination
    filterset_class = AnnotationFilter

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Annotation.objects.none()
        project = project_get_for_user(
            user=self.request.user, project_id=self.kwargs["project_id"], role=Role.VIEWER
        )
        annotations = selectors.annotation_list(project=project)
        if gold_masked(user=self.request.user, project=project):
            # A gold question reads as unlabeled to them: no votes (from before it was gold).
            annotations = annotations.filter(image__gold_label__isnull=True)
        return annotations


class DisagreementsView(generics.ListAPIView):
    serializer_class = ImageSerializer
    # The review list is small and ordered by how much it needs a look: one page.
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Image.objects.none()
        project = project_get_for_user(
            user=self.request.user, project_id=self.kwargs["project_id"], role=Role.ADMIN
        )
        return selectors.disagreement_list(project=project)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "mask_gold": False}  # admins only


class ResolveView(APIView):
    @extend_schema(
        request=ResolveSerializer,
        responses={201: AnnotationSerializer, 409: ErrorSerializer},
        summary="Set the final label",
    )
    def post(self, request: Request, image_id: int) -> Response:
        image = image_get_for_user(user=request.user, image_id=image_id, role=Role.ADMIN)
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        annotation = services.annotation_resolve(
            image=image, admin=request.user, label=body.validated_data["label"]
        )
        return Response(AnnotationSerializer(annotation).data, status=status.HTTP_201_CREATED)


class AnnotationBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    label = serializers.CharField()
    annotator = serializers.CharField(source="annotator.username")
    source = serializers.CharField()
    view = serializers.CharField()
    duration_ms = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    discarded_at = serializers.DateTimeField(
        allow_null=True, help_text="set when a reviewer sent the image back: no longer counted"
    )


class ImageDetailSerializer(ImageSerializer):
    annotations = AnnotationBriefSerializer(many=True, read_only=True)

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "annotations"]


class ImageDetailView(APIView):
    @extend_schema(responses=ImageDetailSerializer, summary="Image with its annotations")
    def get(self, request: Request, image_id: int) -> Response:
        image = image_get_for_user(user=request.user, image_id=image_id)
        masked = gold_masked(user=request.user, project=image.project)
        image = selectors.image_with_annotations(image=image)
        body = ImageDetailSerializer(image, context={"mask_gold": masked}).data
        if masked and image.gold_label is not None:
            body["annotations"] = []  # votes from before it was a gold question
        return Response(body)
