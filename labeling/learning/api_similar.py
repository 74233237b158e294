"""More like this, over the API: ``GET /api/images/{id}/similar/?k=12`` answers the image's
``k`` nearest neighbours by embedding (``labeling.learning.similar``), each an image as the
image list shows it (labels, prediction, ``file_url``) with its cosine ``distance``.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.errors import ValidationFailed
from labeling.core.schema import ErrorSerializer
from labeling.images.api import ImageSerializer
from labeling.images.models import Image
from labeling.images.selectors import gold_masked, image_get_for_user
from labeling.learning.similar import similar_neighbours

K_DEFAULT = 12
K_MAX = 100


class NeighbourSerializer(ImageSerializer):
    distance = serializers.FloatField(
        read_only=True, help_text="cosine distance to the image asked about: 0 same, 2 opposite"
    )

    class Meta(ImageSerializer.Meta):
        fields = [*ImageSerializer.Meta.fields, "distance"]


class SimilarSourceSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["backbone", "model"])
    number = serializers.IntegerField(help_text="the backbone's or the model version's number")


class SimilarSerializer(serializers.Serializer):
    image = serializers.IntegerField()
    k = serializers.IntegerField()
    method = serializers.ChoiceField(
        choices=["hnsw", "exact"],
        help_text="hnsw: the project's pgvector index; exact: searched in full (no index yet)",
    )
    source = SimilarSourceSerializer(help_text="whose embeddings the distances are between")
    results = NeighbourSerializer(many=True)


def parse_k(raw: str | None) -> int:
    if raw is None or raw == "":
        return K_DEFAULT
    try:
        k = int(raw)
    except ValueError:
        raise ValidationFailed(
            f"k must be a whole number from 1 to {K_MAX}", details={"k": raw}
        ) from None
    if not 1 <= k <= K_MAX:
        raise ValidationFailed(f"k must be from 1 to {K_MAX}, not {k}", details={"k": raw})
    return k


class ImageSimilarView(APIView):
    @extend_schema(
        summary="More like this: the image's nearest neighbours by embedding",
        parameters=[
            OpenApiParameter(
                "k", int, description=f"how many (1 to {K_MAX})", default=K_DEFAULT
            )
        ],
        responses={200: SimilarSerializer, 400: ErrorSerializer, 404: ErrorSerializer,
                   409: ErrorSerializer},
    )  # fmt: skip
    def get(self, request: Request, image_id: int) -> Response:
        k = parse_k(request.query_params.get("k"))
        image = image_get_for_user(user=request.user, image_id=image_id)
        found = similar_neighbours(project=image.project, image_id=image.pk, k=k)
        distance = dict(found.neighbours)
        images = {
            i.pk: i for i in Image.objects.filter(project=image.project, pk__in=list(distance))
        }
        results = []
        for image_pk, d in found.neighbours:
            if image_pk in images:  # an image deleted since the index was built is left out
                images[image_pk].distance = round(d, 6)
                results.append(images[image_pk])
        masked = gold_masked(user=request.user, project=image.project)
        body = {
            "image": image.pk,
            "k": k,
            "method": found.method,
            "source": found.source,
            "results": NeighbourSerializer(results, many=True, context={"mask_gold": masked}).data,
        }
        return Response(body)
