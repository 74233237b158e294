"""``GET /api/projects/{id}/export/?format=json|csv|imagefolder&labeled=&predictions=``:
a project admin's streamed download of the project's images, labels and predictions.

    curl -H "Authorization: Token <key>" -OJ \
        "http://127.0.0.1:8000/api/projects/1/export/?format=imagefolder"
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from labeling.core.errors import ValidationFailed
from labeling.exports.services import (
    CONTENT_TYPES,
    FORMATS,
    export_filename,
    export_options_parse,
    export_stream,
)
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class ExportNegotiation(DefaultContentNegotiation):
    """DRF reads ``?format=`` as a renderer override and answers 404 for ``csv``; here it
    names the export's format, and errors are always rendered as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class ProjectExportView(APIView):
    content_negotiation_class = ExportNegotiation

    @extend_schema(
        summary="Export the project (streamed): json, csv or an imagefolder zip",
        description=(
            "json: every image with its annotations (user, label, source, created), consensus "
            "label, agreement, status and the active model's latest prediction with the model "
            "version that made it. csv: one row per image. imagefolder: a zip with one folder "
            "per class holding the consensus-labeled image files. Defaults: json and csv export "
            "every image (labeled=false) with predictions (predictions=true); imagefolder is "
            "labeled images only, without predictions."
        ),
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), default="json"),
            OpenApiParameter(
                "labeled",
                OpenApiTypes.BOOL,
                description="only images with a consensus label (default false; imagefolder: "
                "always true)",
            ),
            OpenApiParameter(
                "predictions",
                OpenApiTypes.BOOL,
                description="add the active model's latest prediction to each image (default "
                "true for json and csv; imagefolder: always false)",
            ),
        ],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/zip"): OpenApiTypes.BINARY,
        },
    )
    def get(self, request: Request, project_id: int) -> StreamingHttpResponse:
        # The role first: an outsider learns nothing from a bad parameter.
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.ADMIN)
        options = export_options_parse(params=_single_values(request))
        name = export_filename(project=project, options=options, now=datetime.now(UTC))
        response = StreamingHttpResponse(
            export_stream(project=project, options=options),
            content_type=CONTENT_TYPES[options.format],
        )
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        response["Cache-Control"] = "no-store"
        response["X-Accel-Buffering"] = "no"  # nginx: pass the stream on as it comes
        return response


def _single_values(request: Request) -> dict[str, str]:
    params = {}
    for key, values in request.query_params.lists():
        if len(values) > 1:
            raise ValidationFailed(
                f"{key} is given {len(values)} times; give it once",
                code="invalid_parameter",
                details={"parameter": key},
            )
        params[key] = values[0]
    return params
