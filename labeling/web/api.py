"""Session authentication for the web UI: ``POST /api/auth/login/``, ``POST /api/auth/logout/``,
``GET /api/auth/me/``. API clients use ``POST /api/auth/token/`` instead."""

from __future__ import annotations

from django.contrib.auth import authenticate, login, logout
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.errors import ValidationFailed
from labeling.core.throttles import LoginThrottle


class LoginSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    is_staff = serializers.BooleanField()


class LoginView(APIView):
    permission_classes = [AllowAny]
    # No authentication classes: a stale session must not turn a login into a 403.
    authentication_classes = []
    # Failed logins per address and per username (labeling/core/throttles.py).
    throttle_classes = [LoginThrottle]

    @extend_schema(
        request=LoginSerializer,
        responses=MeSerializer,
        summary="Log in with a session cookie (the web UI; needs the CSRF token)",
    )
    def post(self, request: Request) -> Response:
        # Login CSRF: without this, another site could log a victim into the attacker's
        # account. DRF exempts views from CSRF; run the same check SessionAuthentication does.
        SessionAuthentication().enforce_csrf(request)
        body = LoginSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=body.validated_data["username"],
            password=body.validated_data["password"],
        )
        if user is None:
            raise ValidationFailed("wrong username or password", code="invalid_credentials")
        login(request._request, user)  # rotates the session key and the CSRF token
        return Response(MeSerializer(user).data)


class LogoutView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={204: None}, summary="End the session")
    def post(self, request: Request) -> Response:
        logout(request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="Who is logged in (401 when nobody)")
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)

    @classmethod
    def as_view(cls, **initkwargs):
        # Sets the CSRF cookie, so a page that only asks who is logged in can then log in.
        return ensure_csrf_cookie(super().as_view(**initkwargs))
