"""The review queue: labels the model suspects are wrong, and reviewers' decisions.

``GET /api/projects/{id}/reviews/?state=open``, ``GET /api/reviews/{id}/``,
``POST /api/reviews/{id}/decision/``; for project reviewers and admins (docs/api.md, "Review
queue").
"""

from __future__ import annotations

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, serializers
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.annotations import selectors
from labeling.annotations.models import Annotation, LabelReview, ReviewState
from labeling.annotations.reviews import Decision, review_decide
from labeling.core.parsers import JSONParser
from labeling.core.schema import ErrorSerializer
from labeling.images.models import Image
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class ReviewImageSerializer(serializers.ModelSerializer):
    file_url = serializers.SerializerMethodField()

    class Meta:
        model = Image
        fields = [
            "id",
            "file_url",
            "original_name",
            "width",
            "height",
            "predicted_label",
            "confidence",
            "status",
            "consensus_label",
        ]

    def get_file_url(self, image: Image) -> str:
        return reverse("image-file", args=[image.id])


class ReviewVoteSerializer(serializers.Serializer):
    annotator = serializers.CharField(source="annotator.username")
    label = serializers.CharField()
    source = serializers.CharField(help_text="manual, import, resolution or review")
    created_at = serializers.DateTimeField()
    discarded = serializers.SerializerMethodField(
        help_text="true: a reviewer sent the image back; the vote no longer counts"
    )

    def get_discarded(self, vote: Annotation) -> bool:
        return vote.discarded_at is not None


class ReviewSerializer(serializers.ModelSerializer):
    image = ReviewImageSerializer()
    state = serializers.ChoiceField(choices=ReviewState.choices)
    votes = ReviewVoteSerializer(source="image.votes", many=True)
    run = serializers.IntegerField(
        source="run_id", allow_null=True, help_text="the label_check run that found it"
    )
    score = serializers.FloatField(help_text="how likely the label is wrong, 0..1")
    decided_by = serializers.CharField(source="decided_by.username", allow_null=True)
    label_after = serializers.SerializerMethodField(help_text="relabeled: the reviewer's label")

    class Meta:
        model = LabelReview
        fields = [
            "id",
            "project",
            "image",
            "state",
            "score",
            "given_label",
            "model_label",
            "model_confidence",
            "votes",
            "run",
            "found_at",
            "decided_by",
            "decided_at",
            "label_after",
        ]

    def get_label_after(self, review: LabelReview) -> str | None:
        return review.label_after or None


class DecisionSerializer(serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.choices)
    label = serializers.CharField(
        max_length=100, required=False, allow_null=True, help_text="relabel only: the new label"
    )
    decision_id = serializers.UUIDField(
        help_text="idempotency key chosen by the client: a replay answers the same review"
    )


class ReviewPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = ("-score", "id")


class ProjectReviewsView(generics.ListAPIView):
    serializer_class = ReviewSerializer
    pagination_class = ReviewPagination
    filter_backends: list = []  # the state parameter below is the only filter

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "state",
                OpenApiTypes.STR,
                enum=list(selectors.REVIEW_STATES),
                description="which reviews: open (the default) or one other state, or all",
            )
        ],
        summary="The review queue: suspect labels, most likely wrong first",
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return LabelReview.objects.none()
        project = project_get_for_user(
            user=self.request.user, project_id=self.kwargs["project_id"], role=Role.REVIEWER
        )
        state = self.request.query_params.get("state") or ReviewState.OPEN
        return selectors.review_list(project=project, state=state)


class ReviewDetailView(APIView):
    @extend_schema(responses=ReviewSerializer, summary="A review, with the image's votes")
    def get(self, request: Request, review_id: int) -> Response:
        review = selectors.review_get_for_user(user=request.user, review_id=review_id)
        return Response(ReviewSerializer(review).data)


class ReviewDecisionView(APIView):
    parser_classes = [JSONParser]

    @extend_schema(
        request=DecisionSerializer,
        responses={200: ReviewSerializer, 409: ErrorSerializer},
        summary=(
            "Decide: confirm, relabel (with label) or send_back (a replayed decision_id "
            "answers the same review; 409 already_decided, stale, decision_id_reused, gold)"
        ),
    )
    def post(self, request: Request, review_id: int) -> Response:
        review = selectors.review_get_for_user(user=request.user, review_id=review_id)
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        review_decide(
            review_id=review.pk,
            user=request.user,
            decision=data["decision"],
            label=data.get("label"),
            decision_id=data["decision_id"],
        )
        return Response(
            ReviewSerializer(
                selectors.review_get_for_user(user=request.user, review_id=review.pk)
            ).data
        )
