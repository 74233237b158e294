"""Tokens, ``POST`` (throttled) and ``DELETE /api/auth/token/``, and the health check
``GET /api/health/`` (unauthenticated: load balancers and ``docker compose`` probe it)."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.api_errors import error_body
from labeling.core.services import token_issue, token_revoke
from labeling.core.throttles import LoginThrottle

logger = logging.getLogger(__name__)


class TokenView(APIView):
    """``POST``: a username and password for the user's token (throttled: see
    labeling/core/throttles.py). ``DELETE``: revoke the caller's token."""

    throttle_classes = [LoginThrottle]

    def get_permissions(self):
        if self.request.method == "POST":
            return [AllowAny()]
        return [IsAuthenticated()]

    def get_throttles(self):
        return super().get_throttles() if self.request.method == "POST" else []

    @extend_schema(
        request=AuthTokenSerializer,
        responses=inline_serializer("Token", {"token": serializers.CharField()}),
        summary="Exchange username and password for an API token",
    )
    def post(self, request: Request) -> Response:
        body = AuthTokenSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        token = token_issue(user=body.validated_data["user"])
        return Response({"token": token.key})

    @extend_schema(
        request=None,
        responses={204: None},
        summary="Revoke the caller's API token (a new login issues a new one)",
    )
    def delete(self, request: Request) -> Response:
        token_revoke(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


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
