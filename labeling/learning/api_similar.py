"""More like this, over the API: ``GET /api/images/{id}/similar/?k=12`` answers the image's
``k`` nearest neighbours by embedding (``labeling.learning.similar``), each an image as the
image list shows it (labels, prediction, ``file_url``) with its cosine ``distance``; and
``GET /api/projects/{id}/embedding-map/``, the dashboard's 2-D map of the project's embeddings
(``labeling.learning.embedding_map``), each point with its label, prediction and uncertainty.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.errors import Conflict, ValidationFailed
from labeling.core.schema import ErrorSerializer
from labeling.images.api import ImageSerializer
from labeling.images.models import Image
from labeling.images.selectors import gold_masked, image_get_for_user, image_shown_fields
from labeling.learning.models import EmbeddingMap
from labeling.learning.similar import Source, similar_neighbours
from labeling.projects.selectors import project_get_for_user

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


class MapPointsSerializer(serializers.Serializer):
    id = serializers.ListField(child=serializers.IntegerField())
    x = serializers.ListField(child=serializers.FloatField(), help_text="0..1")
    y = serializers.ListField(child=serializers.FloatField(), help_text="0..1, same scale as x")
    label = serializers.ListField(
        child=serializers.IntegerField(), help_text="index into labels; -1: no label"
    )
    predicted = serializers.ListField(
        child=serializers.IntegerField(), help_text="index into labels; -1: no prediction"
    )
    uncertainty = serializers.ListField(
        child=serializers.FloatField(allow_null=True), help_text="1 - confidence; null: none"
    )


class EmbeddingMapSerializer(serializers.Serializer):
    method = serializers.CharField(help_text="pca")
    source = SimilarSourceSerializer()
    total = serializers.IntegerField(help_text="vectors the project had when it was computed")
    sampled = serializers.IntegerField(help_text="points on the map (at most 50,000)")
    explained = serializers.ListField(
        child=serializers.FloatField(), help_text="the variance share of each axis"
    )
    built_at = serializers.DateTimeField()
    labels = serializers.ListField(child=serializers.CharField())
    points = MapPointsSerializer()


class ProjectEmbeddingMapView(APIView):
    @extend_schema(
        summary="The 2-D map of the project's embeddings, for the dashboard",
        responses={200: EmbeddingMapSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    )
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id)
        built = (
            EmbeddingMap.objects.filter(project=project)
            .select_related("backbone", "model_version")
            .first()
        )
        if built is None or not (built.backbone or built.model_version):
            raise Conflict(
                "the project has no embedding map yet: it is drawn by the worker once the "
                "project has embeddings (a backbone, or the first model a round trains)",
                code="no_map",
            )
        masked = gold_masked(user=request.user, project=project)
        points = map_points(project, built.points, mask_gold=masked)
        source = Source(backbone=built.backbone, model_version=built.model_version)
        body = {
            "method": built.method,
            "source": source.describe(),
            "total": built.total,
            "sampled": len(points["id"]),
            "explained": built.explained,
            "built_at": built.built_at,
            "labels": list(project.labels),
            "points": points,
        }
        return Response(EmbeddingMapSerializer(body).data)


def map_points(project, stored: dict, *, mask_gold: bool) -> dict:
    """The map's points with each image's label, prediction and uncertainty now (images
    deleted since it was drawn left out)."""
    index = {name: i for i, name in enumerate(project.labels)}
    now = {
        image_id: (label, predicted, uncertainty)
        for image_id, label, predicted, uncertainty in Image.objects.filter(
            project=project, pk__in=stored["id"]
        )
        .annotate(**image_shown_fields(mask_gold=mask_gold))
        .values_list("id", "shown_label", "predicted_label", "uncertainty")
    }
    out: dict[str, list] = {k: [] for k in ("id", "x", "y", "label", "predicted", "uncertainty")}
    for image_id, x, y in zip(stored["id"], stored["x"], stored["y"], strict=True):
        if image_id not in now:
            continue
        label, predicted, uncertainty = now[image_id]
        out["id"].append(image_id)
        out["x"].append(x)
        out["y"].append(y)
        out["label"].append(index.get(label, -1))
        out["predicted"].append(index.get(predicted, -1))
        out["uncertainty"].append(None if uncertainty is None else round(uncertainty, 4))
    return out
