"""The single-page web UI: ``index.html`` of the Vite build for every client route.

Build it with ``make frontend`` (``cd frontend && npm ci && npm run build``); its hashed
assets are served under ``/static/`` by whitenoise (``frontend/dist`` is a static files dir).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.html import json_script
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_safe

NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LabelLoop: web UI not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>The LabelLoop web UI is not built</h1>
<p>Run <code>make frontend</code> (that is, <code>cd frontend &amp;&amp; npm ci &amp;&amp;
npm run build</code>), then reload this page.</p>
<p>The REST API works without it: <a href="/api/docs/">/api/docs/</a>.
Staff: <a href="/admin/">/admin/</a>.</p>
</body></html>
"""


# The web UI's routes (frontend/src/main.tsx and the dashboard's tabs in
# frontend/src/pages/dashboard/Dashboard.tsx). Any other path still gets the app, which shows
# its "Page not found", but with a 404 status: a mistyped URL is not a page.
DASHBOARD_TABS = "overview|review|model|images|map|upload|members|export|webhooks|settings"
CLIENT_ROUTES = re.compile(
    rf"^/(?:login|projects|projects/\d+(?:/label|/admin(?:/(?:{DASHBOARD_TABS}))?)?)?/?$"
)


@require_safe
@never_cache  # index.html names the current hashed assets; a stale copy would load old ones
@ensure_csrf_cookie  # the SPA reads the csrftoken cookie for its X-CSRFToken header
def spa_index(request: HttpRequest) -> HttpResponse:
    index = settings.LABELLOOP_FRONTEND_DIST / "index.html"
    try:
        html = index.read_text(encoding="utf-8")
    except FileNotFoundError:
        return HttpResponse(NOT_BUILT, status=503, content_type="text/html; charset=utf-8")
    # Who is logged in, in the page itself: the app starts without a round trip, and an
    # anonymous visit does not begin with a 401 in the console.
    user = request.user
    me = {"username": user.username, "is_staff": user.is_staff} if user.is_authenticated else None
    html = html.replace("</head>", f"{json_script(me, 'labelloop-me')}</head>", 1)
    status = 200 if CLIENT_ROUTES.match(request.path) else 404
    return HttpResponse(html, status=status, content_type="text/html; charset=utf-8")
