"""Images: upload (files, zip, manifest), cursor-paginated list with filters, detail, bytes."""

from __future__ import annotations

import logging
import mimetypes
import zipfile
from collections.abc import Iterator

import django_filters
from django.db.models import F, Q
from django.http import FileResponse
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.errors import NotFound, Unavailable, ValidationFailed
from labeling.core.filters import StrictOrderingFilter
from labeling.core.schema import ErrorSerializer
from labeling.core.storage import EXTENSIONS, storage_open
from labeling.images import selectors
from labeling.images.manifest import manifest_parse
from labeling.images.models import Image, ImageStatus
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import Source, SourceError, file_source, zip_sources
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user

logger = logging.getLogger(__name__)

IMAGE_MEDIA_TYPES = sorted(
    {
        mimetypes.guess_type(f"x.{ext}")[0] or "application/octet-stream"
        for ext in EXTENSIONS.values()
    }
)


# What a gold question shows to those it is masked for (``gold_masked``): an unlabeled image.
GOLD_MASK = {
    "status": ImageStatus.UNLABELED.value,
    "consensus_label": None,
    "agreement": None,
    "annotation_count": 0,
    "gold_label": None,
}


class ImageSerializer(serializers.ModelSerializer):
    """An image; with ``mask_gold`` in the context (everyone but project admins), a gold
    question reads as an unlabeled image and ``gold_label`` is always null."""

    file_url = serializers.SerializerMethodField()
    gold_label = serializers.CharField(
        allow_null=True,
        read_only=True,
        help_text="a gold question's known answer; null for others, and for non-admins always",
    )

    class Meta:
        model = Image
        fields = [
            "id",
            "project",
            "original_name",
            "sha256",
            "format",
            "mode",
            "width",
            "height",
            "size_bytes",
            "status",
            "priority",
            "annotation_count",
            "consensus_label",
            "agreement",
            "predicted_label",
            "confidence",
            "uncertainty",
            "gold_label",
            "file_url",
            "created_at",
        ]

    def get_file_url(self, image: Image) -> str:
        return reverse("image-file", args=[image.id])

    def to_representation(self, image: Image) -> dict:
        data = super().to_representation(image)
        if self.context.get("mask_gold", True) and image.gold_label is not None:
            data.update(GOLD_MASK)
        return data


# Ids one image-list request may filter by (``ids``): a lasso on the map opens at most this many.
MAX_IDS = 1000


class ImageFilter(django_filters.FilterSet):
    # On the fields as the caller sees them (``images_shown``): a gold question filters as
    # the unlabeled image it reads as, for those it is masked for.
    status = django_filters.MultipleChoiceFilter(
        field_name="shown_status", choices=ImageStatus.choices
    )
    label = django_filters.CharFilter(field_name="shown_label")
    predicted = django_filters.CharFilter(field_name="predicted_label")
    min_uncertainty = django_filters.NumberFilter(field_name="uncertainty", lookup_expr="gte")
    disagreement = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")], method="filter_disagreement"
    )
    ids = django_filters.CharFilter(
        method="filter_ids",
        help_text=f"comma-separated image ids, at most {MAX_IDS} (a selection on the map)",
    )
    model_disagrees = django_filters.ChoiceFilter(
        choices=[("true", "true"), ("false", "false")],
        method="filter_model_disagrees",
        help_text="the active model's prediction differs from the consensus label",
    )
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=200,
        help_text="part of the file name (any case), or an image id",
    )

    class Meta:
        model = Image
        fields = [
            "status",
            "label",
            "predicted",
            "min_uncertainty",
            "disagreement",
            "model_disagrees",
            "search",
            "ids",
        ]

    def filter_disagreement(self, queryset, name, value):
        if value == "true":
            return queryset.filter(shown_agreement__lt=1.0)
        return queryset.exclude(shown_agreement__lt=1.0)

    def filter_ids(self, queryset, name, value):
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not all(part.isdigit() for part in parts):
            raise ValidationFailed(
                "ids must be image ids separated by commas", details={"ids": value}
            )
        if len(parts) > MAX_IDS:
            raise ValidationFailed(
                f"at most {MAX_IDS} ids at a time, not {len(parts)}", details={"ids": len(parts)}
            )
        return queryset.filter(pk__in=[int(part) for part in parts])

    def filter_model_disagrees(self, queryset, name, value):
        both = queryset.exclude(shown_label=None).exclude(predicted_label=None)
        differs = both.exclude(shown_label=F("predicted_label"))
        return differs if value == "true" else both.filter(shown_label=F("predicted_label"))

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        match = Q(original_name__icontains=value)
        if value.isdigit() and len(value) < 19:  # an id (bigint range)
            match |= Q(pk=int(value))
        return queryset.filter(match)


class ImageCursorPagination(CursorPagination):
    """Cursor pages; with ``with_count=true`` the first page also says how many images match
    the filters (``count``): one COUNT query, so only when asked."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    def paginate_queryset(self, queryset, request, view=None):
        self.count = None
        flag = request.query_params.get("with_count", "false")
        if flag not in ("true", "false"):
            raise ValidationFailed(
                "with_count must be true or false",
                code="invalid_parameter",
                details={"parameter": "with_count"},
            )
        if flag == "true" and request.query_params.get(self.cursor_query_param) is None:
            self.count = queryset.count()
        return super().paginate_queryset(queryset, request, view)

    def get_paginated_response(self, data):
        response = super().get_paginated_response(data)
        if self.count is not None:
            response.data["count"] = self.count
        return response

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        described["properties"]["count"] = {
            "type": "integer",
            "description": "images matching the filters; on the first page, with with_count=true",
        }
        return described


# Orderings on a field that is null until a model scored the image: a cursor cannot point
# between nulls and numbers, and "most uncertain first" means the scored images, so ordering by
# one of these lists only the images that have it.
NULLABLE_ORDERINGS = ("uncertainty", "confidence")


class UploadResultSerializer(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "duplicate", "rejected"])
    reason = serializers.CharField(allow_null=True)
    image = serializers.IntegerField(allow_null=True)
    sha256 = serializers.CharField(allow_null=True)
    label = serializers.CharField(allow_null=True)
    gold = serializers.BooleanField(help_text="the label is a gold label (the manifest's gold)")


class UploadResponseSerializer(serializers.Serializer):
    summary = serializers.DictField(child=serializers.IntegerField())
    results = UploadResultSerializer(many=True)


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(allow_empty_file=True), min_length=1)
    labels = serializers.FileField(
        required=False,
        help_text="CSV or JSON: filename -> label; a gold column (or key) makes a gold question",
    )
    layout = serializers.ChoiceField(
        choices=["flat", "imagefolder"],
        default="flat",
        help_text="imagefolder: each file's parent folder name is its label",
    )


class ProjectImagesView(generics.ListAPIView):
    serializer_class = ImageSerializer
    pagination_class = ImageCursorPagination
    filterset_class = ImageFilter
    filter_backends = [django_filters.rest_framework.DjangoFilterBackend, StrictOrderingFilter]
    ordering_fields = ["id", "created_at", "priority", "confidence", "uncertainty"]
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Image.objects.none()
        project = project_get_for_user(
            user=self.request.user, project_id=self.kwargs["project_id"], role=Role.VIEWER
        )
        self.mask_gold = selectors.gold_masked(user=self.request.user, project=project)
        return selectors.image_list(project=project, mask_gold=self.mask_gold)

    def get_serializer_context(self) -> dict:
        return {**super().get_serializer_context(), "mask_gold": getattr(self, "mask_gold", True)}

    def filter_queryset(self, queryset):
        queryset = super().filter_queryset(queryset)
        terms = self.request.query_params.get("ordering", "").split(",")
        for name in {term.strip().lstrip("-") for term in terms} & set(NULLABLE_ORDERINGS):
            queryset = queryset.exclude(**{f"{name}__isnull": True})
        return queryset

    @extend_schema(
        summary="List images (cursor-paginated)",
        parameters=[
            OpenApiParameter(
                "with_count",
                bool,
                description="true: the first page also has count, the images matching",
            )
        ],
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={201: UploadResponseSerializer, 200: UploadResponseSerializer},
        summary="Upload images, zips and an optional label manifest",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.ADMIN)
        files = request.FILES.getlist("files")
        if not files:
            raise ValidationFailed(
                "no files: send one or more multipart parts named 'files'", code="no_files"
            )
        serializer = UploadSerializer(
            data={
                "files": files,
                "layout": request.data.get("layout", "flat"),
                **({"labels": request.FILES["labels"]} if "labels" in request.FILES else {}),
            }
        )
        serializer.is_valid(raise_exception=True)
        manifest = None
        if "labels" in serializer.validated_data:
            upload = serializer.validated_data["labels"]
            manifest = manifest_parse(data=upload.read(), name=upload.name)
        report = images_ingest(
            project=project,
            user=request.user,
            sources=_upload_sources(files),
            manifest=manifest,
            labels_from_folders=serializer.validated_data["layout"] == "imagefolder",
        )
        body = {"summary": report.summary, "results": [r.as_dict() for r in report.results]}
        created = report.summary["created"] > 0
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


def _upload_sources(files) -> Iterator[Source | SourceError]:
    limits = ingest_limits()
    for upload in files:
        name = upload.name or "unnamed"
        if name.lower().endswith(".zip") or zipfile.is_zipfile(upload):
            upload.seek(0)
            yield from zip_sources(upload, archive_name=name, limits=limits)
        else:
            yield file_source(upload, name=name, max_bytes=limits.max_bytes)


class ImageFileView(APIView):
    @extend_schema(
        # The stored file as it was uploaded, in its own format's media type.
        responses={
            **{(200, media_type): bytes for media_type in IMAGE_MEDIA_TYPES},
            404: OpenApiResponse(
                ErrorSerializer,
                description="No such image (not_found), or its file is not in the image "
                "store (file_missing).",
            ),
            503: OpenApiResponse(
                ErrorSerializer, description="The image store cannot be reached (unavailable)."
            ),
        },
        summary="Image bytes",
    )
    def get(self, request: Request, image_id: int) -> FileResponse:
        image = selectors.image_get_for_user(user=request.user, image_id=image_id)
        content_type = mimetypes.guess_type(image.storage_key)[0] or "application/octet-stream"
        try:
            handle = storage_open(key=image.storage_key)
        except FileNotFoundError as exc:
            logger.error("image %d: its file is missing from the image store (%s)", image.pk, exc)
            raise NotFound(
                f"image {image.pk}'s file is missing from the image store; restore the store "
                "from a backup (docs/reliability.md)",
                code="file_missing",
            ) from exc
        except OSError as exc:
            raise Unavailable(f"the image store could not be read: {exc}") from exc
        response = FileResponse(handle, content_type=content_type)
        # Content-addressed: these bytes never change, so browsers may keep them.
        response["Cache-Control"] = "private, max-age=31536000, immutable"
        response["ETag"] = f'"{image.sha256}"'
        return response
