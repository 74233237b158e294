"""Authentication, ``POST /api/auth/token/`` (throttled), and the health check
``GET /api/health/`` (unauthenticated: load balancers and ``docker compose`` probe it)."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from labeling.core.api_errors import error_body

logger = logging.getLogger(__name__)


class TokenView(ObtainAuthToken):
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(
        request=AuthTokenSerializer,
        responses=inline_serializer("Token", {"token": serializers.CharField()}),
        summary="Exchange username and password for an API token",
    )
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class HealthView(APIView):
    """200 when this process can run a query; 503 (with the error body) when it cannot.

    No authentication, so a probe needs no credentials and a bad token header cannot turn the
    answer into a 401; it discloses nothing but "up" or "down".
    """

    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer(
                "Health",
                {"status": serializers.CharField(), "database": serializers.BooleanField()},
            )
        },
        summary="Health check: the app answers and its database accepts queries",
    )
    def get(self, request: Request) -> Response:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        except DatabaseError as exc:
            # Logged, not returned: the probe's client needs "down", the operator the reason.
            logger.warning("health check: the database is unavailable: %s", exc)
            body = error_body("database_unavailable", "the database does not answer")
            return Response(
                {"status": "unavailable", "database": False, **body},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
        return Response({"status": "ok", "database": True})
