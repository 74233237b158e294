"""``GET /api/model-versions/{id}/export/?format=onnx|torchscript[&quantize=int8]``: a model
version as one file for use outside LabelLoop (project admins). 202 with the status and
``Retry-After`` while a worker makes it; the file, as an attachment, once it is ready.

    curl -H "Authorization: Token <key>" -OJ \
        "http://127.0.0.1:8000/api/model-versions/3/export/?format=onnx&quantize=int8"
"""

from __future__ import annotations

from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.errors import NotFound, ValidationFailed
from labeling.core.schema import ErrorSerializer
from labeling.core.storage import storage_open
from labeling.learning import model_exports
from labeling.learning.models import ModelExport, ModelVersion
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class ModelExportNegotiation(DefaultContentNegotiation):
    """``?format=`` names the file's format here, not a renderer; errors and statuses are
    JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return JSONRenderer(), JSONRenderer.media_type


class VersionExportView(APIView):
    content_negotiation_class = ModelExportNegotiation

    @extend_schema(
        summary="Export a model version as an ONNX or TorchScript file (202 while it is made)",
        description=(
            "The file holds the model and, in its metadata, the classes, input size, channels, "
            "normalisation and the input and output tensors (docs/api.md). The first request "
            "asks a worker to make it and answers 202 with a Retry-After header; ask again "
            "until the answer is 200 and the file. Files are kept: later requests for the "
            "same version, format and quantization download the same file at once. "
            "409 export_failed: the worker could not make it (the error says why); asking "
            "again retries."
        ),
        parameters=[
            OpenApiParameter(
                "format", OpenApiTypes.STR, enum=list(model_exports.FORMATS), required=True
            ),
            OpenApiParameter(
                "quantize",
                OpenApiTypes.STR,
                enum=list(model_exports.QUANTIZATIONS),
                description="int8: ONNX Runtime's static quantization (format=onnx only); "
                "left out: float32",
            ),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiTypes.BINARY,
            202: OpenApiResponse(OpenApiTypes.OBJECT, description="being made; ask again"),
            400: ErrorSerializer,
            403: ErrorSerializer,
            404: ErrorSerializer,
            409: ErrorSerializer,
        },
    )
    def get(self, request: Request, version_id: int) -> Response | FileResponse:
        version = ModelVersion.objects.select_related("project").filter(pk=version_id).first()
        if version is None:
            raise NotFound("model version not found")
        try:
            # The role first: an outsider learns nothing from a bad parameter.
            project_get_for_user(user=request.user, project_id=version.project_id, role=Role.ADMIN)
        except NotFound:
            raise NotFound("model version not found") from None
        fmt, quantize = model_exports.model_export_options_parse(params=_single_values(request))
        export = model_exports.model_export_request(
            version=version, fmt=fmt, quantize=quantize, user=request.user
        )
        if export.status != ModelExport.Status.READY:
            return Response(
                model_exports.model_export_status(export=export),
                status=status.HTTP_202_ACCEPTED,
                headers={"Retry-After": str(model_exports.RETRY_AFTER)},
            )
        response = FileResponse(
            storage_open(key=export.file_key),
            as_attachment=True,
            filename=model_exports.model_export_filename(export=export),
            content_type=model_exports.CONTENT_TYPE,
        )
        response["X-Content-SHA256"] = export.sha256
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
