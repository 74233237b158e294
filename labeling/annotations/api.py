"""Project statistics (``/api/projects/{id}/stats/``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.annotations.selectors import project_stats
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user


class ProjectStatsView(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT, summary="Counts, class balance, throughput")
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.VIEWER)
        return Response(project_stats(project=project))
