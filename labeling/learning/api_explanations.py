"""``GET /api/images/{id}/explanation/?version=``: an image's class-activation map.

200: the map as an RGBA PNG, the image's own aspect (the letterbox the model saw cut off), at
the model's resolution, to be stretched over the image; the class it explains and the model's
probability of it in headers (``X-Explained-Class``, percent-encoded UTF-8,
``X-Explained-Probability``, ``X-Model-Version``, ``X-Border-Share``). 202 while a worker
draws it (``Retry-After``, seconds). docs/api.md, "Explanations".
"""

from __future__ import annotations

from urllib.parse import quote

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.schema import ErrorSerializer
from labeling.images.selectors import image_get_for_user
from labeling.learning.explanations import (
    RETRY_AFTER_SECONDS,
    explanation_allowed,
    explanation_get_or_request,
    explanation_version,
)
from labeling.learning.models import Explanation


class ImageExplanationView(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "version",
                int,
                description="the model version's number in the project (default: the active one)",
            )
        ],
        responses={
            (200, "image/png"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="RGBA PNG of the map; headers X-Explained-Class (percent-encoded "
                "UTF-8), X-Explained-Probability, X-Model-Version, X-Border-Share",
            ),
            202: OpenApiResponse(
                OpenApiTypes.OBJECT,
                description='Being drawn: {"status": "pending", "model_version"}; '
                "ask again after Retry-After seconds",
            ),
            400: ErrorSerializer,  # version not a number
            403: ErrorSerializer,  # an annotator where suggestions are hidden
            404: ErrorSerializer,  # no such image (or not yours), no such version
            409: ErrorSerializer,  # no active model
            422: ErrorSerializer,  # the map could not be drawn (asking again retries)
            503: ErrorSerializer,  # no worker took the request in time (it stays queued)
        },
        summary="The class-activation map of an image by a model version (202 while drawn)",
    )
    def get(self, request: Request, image_id: int):
        image = image_get_for_user(user=request.user, image_id=image_id)
        explanation_allowed(user=request.user, image=image)
        version = explanation_version(image=image, number=request.query_params.get("version"))
        row = explanation_get_or_request(image=image, version=version)
        if row.status == Explanation.Status.PENDING:
            return Response(
                {"status": "pending", "model_version": version.number},
                status=status.HTTP_202_ACCEPTED,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        response = HttpResponse(bytes(row.png), content_type="image/png")
        response["X-Explained-Class"] = quote(row.label, safe="")
        response["X-Explained-Probability"] = f"{row.probability:.6f}"
        response["X-Model-Version"] = str(version.number)
        response["X-Border-Share"] = f"{row.border_share:.4f}"
        # A map never changes for its (image, version); a class rename changes its header.
        response["Cache-Control"] = "private, max-age=300"
        return response
