"""Mounted at "" after the API: the session endpoints, then the SPA for every client route.

``/api/...`` paths that the API does not know fall through to here and still answer the JSON
404 (the catch-all below never matches ``api/``, ``admin/``, ``static/`` or ``media/``).
"""

from __future__ import annotations

from django.urls import path, re_path

from labeling.web.api import LoginView, LogoutView, MeView
from labeling.web.views import spa_index

urlpatterns = [
    path("api/auth/login/", LoginView.as_view(), name="auth-login"),
    path("api/auth/logout/", LogoutView.as_view(), name="auth-logout"),
    path("api/auth/me/", MeView.as_view(), name="auth-me"),
    path("", spa_index, name="home"),
    re_path(r"^(?!(?:api|admin|static|media)(?:/|$)).+$", spa_index, name="spa"),
]
