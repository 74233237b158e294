"""The web side of class-activation maps: ``GET /api/images/{id}/explanation/?version=``.

A map is drawn once per (image, model version) by a worker (``explain_server``: the web
process never imports torch) and kept in an ``Explanation`` row. Asking for one that is not
there yet leaves a pending row and NOTIFYs the workers; the caller is told to come back
(``202`` + ``Retry-After``) and finds the PNG on a later call. The row goes with its image or
its version (foreign keys that cascade, in PostgreSQL for a project's images).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from labeling.core.errors import Conflict, NotFound, PermissionDenied, ServiceError, Unavailable
from labeling.images.models import Image
from labeling.learning.models import Explanation, ModelVersion
from labeling.projects.models import Role
from labeling.projects.selectors import project_role

CHANNEL = "labelloop_explain"
MAX_VERSION = 2**31 - 1  # the column's range: a larger number is a 400, not a database error
RETRY_AFTER_SECONDS = 1  # what a 202 tells the caller: a batch of maps takes well under that


class ExplanationFailed(ServiceError):
    status = 422
    code = "explanation_failed"


def explanation_version(*, image: Image, number: str | None) -> ModelVersion:
    """The version to explain with: the project's version ``number``, or the active one."""
    versions = ModelVersion.objects.filter(project_id=image.project_id)
    if number in (None, ""):
        version = versions.filter(is_active=True).first()
        if version is None:
            raise Conflict("this project has no active model yet; train one first", code="no_model")
        return version
    try:
        wanted = int(number)
    except (TypeError, ValueError):
        wanted = 0
    if not 1 <= wanted <= MAX_VERSION:
        raise ServiceError(
            f"version must be a model version number (1, 2, ...), got {number!r}",
            code="version",
        )
    version = versions.filter(number=wanted).first()
    if version is None:
        raise NotFound(f"this project has no model version {wanted}", code="version_not_found")
    return version


def explanation_allowed(*, user, image: Image) -> None:
    """Annotators see a map (and the class it explains) only where the project shows them the
    model's suggestions: elsewhere it would tell them what the model thinks before they label."""
    role = project_role(user=user, project=image.project)
    if role in (Role.ANNOTATOR, Role.REVIEWER) and not image.project.show_suggestions:
        raise PermissionDenied(
            "this project does not show the model's suggestions to annotators",
            code="suggestions_hidden",
        )


def explanation_get_or_request(*, image: Image, version: ModelVersion) -> Explanation:
    """The (image, version) map: done, or pending (asked for now, or earlier and not drawn
    yet). A failed one is reported and forgotten, so asking again tries again; a request no
    worker has taken for ``LABELLOOP_PREDICT_TIMEOUT`` seconds is a 503 (it stays queued)."""
    row = Explanation.objects.filter(image=image, model_version=version).defer("png").first()
    if row is None:
        row = _request(image=image, version=version)
    if row.status == Explanation.Status.FAILED:
        Explanation.objects.filter(pk=row.pk, status=Explanation.Status.FAILED).delete()
        raise ExplanationFailed(
            f"the map could not be drawn: {row.error}", details={"model_version": version.number}
        )
    if row.status == Explanation.Status.PENDING:
        waited = timezone.now() - row.created_at
        if waited > timedelta(seconds=settings.LABELLOOP_PREDICT_TIMEOUT):
            raise Unavailable(
                f"no worker has drawn this map in {waited.total_seconds():.0f} s; is "
                "`python manage.py worker` running? The request stays queued.",
                code="no_worker",
            )
        return row
    return Explanation.objects.get(pk=row.pk)  # with its PNG


def _request(*, image: Image, version: ModelVersion) -> Explanation:
    try:
        with transaction.atomic():
            row = Explanation.objects.create(image=image, model_version=version)
    except IntegrityError:  # another caller asked for the same map a moment ago
        return Explanation.objects.defer("png").get(image=image, model_version=version)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(row.pk)])
    return row
