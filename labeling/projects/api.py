"""Projects and members: ``/api/projects/``, ``/api/projects/{id}/``, ``.../members/``."""

from __future__ import annotations

from django.db.models import Count, Q
from django.http import QueryDict
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.errors import PermissionDenied, ValidationFailed
from labeling.core.schema import ErrorSerializer
from labeling.projects import selectors, services
from labeling.projects.models import ConsensusMethod, Membership, Project, Role, Strategy


class ClassNameField(serializers.CharField):
    """A class name is a JSON string: a number is refused, not turned into one."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonBooleanField(serializers.BooleanField):
    """A JSON true or false: 1, "yes" or "true" are refused, not coerced. A form (which has
    no types) may say "true" or "false"."""

    FORM_WORDS = {"true": True, "false": False}

    def to_internal_value(self, data):
        if isinstance(data, bool):
            return data
        # A form's fields arrive as a QueryDict, a JSON body's as a dict.
        is_form = isinstance(getattr(self.root, "initial_data", None), QueryDict)
        if is_form and isinstance(data, str) and data.lower() in self.FORM_WORDS:
            return self.FORM_WORDS[data.lower()]
        self.fail("invalid")


class ProjectSerializer(serializers.ModelSerializer):
    labels = serializers.ListField(
        child=ClassNameField(max_length=100), min_length=2, max_length=1000
    )
    slug = serializers.SlugField(max_length=100, required=False)
    description = serializers.CharField(
        max_length=services.DESCRIPTION_MAX, allow_blank=True, required=False
    )
    input_size = serializers.IntegerField(min_value=8, max_value=1024, required=False)
    input_channels = serializers.ChoiceField(choices=[1, 3], required=False)
    annotations_per_image = serializers.IntegerField(min_value=1, max_value=15, required=False)
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False)
    retrain_every = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    exploration_fraction = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    lease_seconds = serializers.IntegerField(min_value=10, max_value=86_400, required=False)
    consensus_method = serializers.ChoiceField(
        choices=ConsensusMethod.choices,
        required=False,
        help_text="how several annotators' votes become one label: weighted (by each "
        "annotator's measured reliability, Dawid-Skene) or majority",
    )
    gold_rate = serializers.FloatField(
        min_value=0.0,
        max_value=0.5,
        required=False,
        help_text="share of an annotator's tasks that are gold questions; 0 = none",
    )
    gold_alert_accuracy = serializers.FloatField(
        min_value=0.0,
        max_value=1.0,
        required=False,
        help_text="gold accuracy below which an annotator is announced "
        "(annotator.quality_low); 0 = never",
    )
    show_suggestions = JsonBooleanField(required=False)
    semi_supervised = JsonBooleanField(
        required=False,
        help_text="rounds trained from scratch also learn from a sample of the unlabeled "
        "images (FixMatch; about five times the training compute); off by default",
    )
    image_count = serializers.IntegerField(read_only=True)
    labeled_count = serializers.SerializerMethodField(
        help_text="images with a consensus label; in the project list only (null elsewhere)"
    )
    role = serializers.SerializerMethodField()
    label_renames = serializers.ListField(
        child=serializers.ListField(child=serializers.CharField(), min_length=2, max_length=2),
        read_only=True,
        help_text="every class rename, oldest first, as [old, new]",
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "labels",
            "label_renames",
            "input_size",
            "input_channels",
            "annotations_per_image",
            "strategy",
            "retrain_every",
            "exploration_fraction",
            "lease_seconds",
            "show_suggestions",
            "consensus_method",
            "gold_rate",
            "gold_alert_accuracy",
            "semi_supervised",
            "image_count",
            "labeled_count",
            "role",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]

    def get_labeled_count(self, project: Project) -> int | None:
        return getattr(project, "labeled_count", None)

    def get_role(self, project: Project) -> str | None:
        return self.context.get("roles", {}).get(project.id)


class LabelRenameSerializer(serializers.Serializer):
    old = serializers.CharField(max_length=100, trim_whitespace=False, help_text="a class now")
    new = serializers.CharField(max_length=100, help_text="its new name")


class MembershipSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")
    role = serializers.ChoiceField(choices=Role.choices)

    class Meta:
        model = Membership
        fields = ["username", "role", "created_at"]
        read_only_fields = ["created_at"]


class MemberRemoveSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)


def _roles_for(request: Request, projects: list[Project]) -> dict[int, str]:
    if request.user.is_staff:
        return {p.id: Role.ADMIN for p in projects}
    rows = Membership.objects.filter(user=request.user, project__in=projects)
    return dict(rows.values_list("project_id", "role"))


class ProjectListView(APIView):
    @extend_schema(responses=ProjectSerializer(many=True), summary="List my projects")
    def get(self, request: Request) -> Response:
        projects = list(
            selectors.project_list_for_user(user=request.user).annotate(
                image_count=Count("images"),
                # "labeled": ImageStatus.LABELED (images is a higher app: named, not imported)
                labeled_count=Count("images", filter=Q(images__status="labeled")),
            )
        )
        context = {"roles": _roles_for(request, projects)}
        return Response(ProjectSerializer(projects, many=True, context=context).data)

    @extend_schema(
        request=ProjectSerializer,
        responses={201: ProjectSerializer, 409: ErrorSerializer},
        summary="Create (staff; 409 when the name, ignoring case, or the slug is taken)",
    )
    def post(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise PermissionDenied("only staff can create projects")
        serializer = ProjectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_create(creator=request.user, **serializer.validated_data)
        project.image_count = 0
        body = ProjectSerializer(project, context={"roles": {project.id: Role.ADMIN}}).data
        return Response(body, status=status.HTTP_201_CREATED)


class ProjectDetailView(APIView):
    def _get(self, request: Request, project_id: int, role: str) -> Project:
        return selectors.project_get_for_user(user=request.user, project_id=project_id, role=role)

    def _body(self, request: Request, project: Project) -> dict:
        project.image_count = project.images.count()
        return ProjectSerializer(project, context={"roles": _roles_for(request, [project])}).data

    @extend_schema(responses=ProjectSerializer, summary="Project settings")
    def get(self, request: Request, project_id: int) -> Response:
        return Response(self._body(request, self._get(request, project_id, Role.VIEWER)))

    @extend_schema(
        request=ProjectSerializer,
        responses={200: ProjectSerializer, 409: ErrorSerializer},
        summary="Change (409 when the new name, ignoring case, is another project's)",
    )
    def patch(self, request: Request, project_id: int) -> Response:
        project = self._get(request, project_id, Role.ADMIN)
        serializer = ProjectSerializer(project, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        if "slug" in fields:
            raise ValidationFailed("a project's slug cannot be changed", code="slug")
        project = services.project_update(project=project, **fields)
        return Response(self._body(request, project))

    @extend_schema(responses={204: None}, summary="Delete the project and its data")
    def delete(self, request: Request, project_id: int) -> Response:
        services.project_delete(project=self._get(request, project_id, Role.ADMIN))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LabelRenameView(APIView):
    @extend_schema(
        request=LabelRenameSerializer,
        responses={200: ProjectSerializer, 400: ErrorSerializer, 409: ErrorSerializer},
        summary="Rename a class (project admin; 409 when the new name is taken)",
        description=(
            "Renames the class in place (same position, so the same model output) and in every "
            "annotation, consensus label and prediction, in one transaction. Models trained "
            "before keep working: their predictions and suggestions use the new name without a "
            "retrain. A label or an upload manifest that still uses the old name is stored under "
            "the new one."
        ),
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = selectors.project_get_for_user(
            user=request.user, project_id=project_id, role=Role.ADMIN
        )
        serializer = LabelRenameSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        project = services.project_label_rename(project=project, **serializer.validated_data)
        project.image_count = project.images.count()
        body = ProjectSerializer(project, context={"roles": _roles_for(request, [project])}).data
        return Response(body)


class MembersView(APIView):
    def _project(self, request: Request, project_id: int) -> Project:
        return selectors.project_get_for_user(
            user=request.user, project_id=project_id, role=Role.ADMIN
        )

    @extend_schema(responses=MembershipSerializer(many=True), summary="List members")
    def get(self, request: Request, project_id: int) -> Response:
        members = selectors.membership_list(project=self._project(request, project_id))
        return Response(MembershipSerializer(members, many=True).data)

    @extend_schema(
        request=MembershipSerializer,
        responses={201: MembershipSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
        summary=(
            "Add or set (404 alike for an unknown name and a disabled account; 409 when it "
            "would leave the project without an admin)"
        ),
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = self._project(request, project_id)
        serializer = MembershipSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_set(
            project=project,
            username=serializer.validated_data["user"]["username"],
            role=serializer.validated_data["role"],
        )
        return Response(MembershipSerializer(membership).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=MemberRemoveSerializer,
        parameters=[OpenApiParameter("username", str, description="or in the JSON body")],
        responses={204: None, 409: ErrorSerializer},
        summary="Remove a member (409 when it would leave the project without an admin)",
    )
    def delete(self, request: Request, project_id: int) -> Response:
        project = self._project(request, project_id)
        data = request.data if request.data else request.query_params
        serializer = MemberRemoveSerializer(data={"username": data.get("username")})
        serializer.is_valid(raise_exception=True)
        services.membership_remove(project=project, username=serializer.validated_data["username"])
        return Response(status=status.HTTP_204_NO_CONTENT)
