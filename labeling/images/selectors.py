"""Reads for images."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from labeling.core.errors import NotFound
from labeling.images.models import Image
from labeling.projects.models import Project, Role
from labeling.projects.selectors import project_get_for_user


def image_list(*, project: Project) -> QuerySet[Image]:
    return Image.objects.filter(project=project)


def image_get_for_user(
    *, user: AbstractBaseUser, image_id: int | str, role: str = Role.VIEWER
) -> Image:
    """The image if the user may see its project; 404 for images of other projects."""
    try:
        image = Image.objects.select_related("project").get(pk=int(image_id))
    except (Image.DoesNotExist, ValueError, TypeError):
        raise NotFound("image not found") from None
    try:
        project_get_for_user(user=user, project_id=image.project_id, role=role)
    except NotFound:
        raise NotFound("image not found") from None
    return image
