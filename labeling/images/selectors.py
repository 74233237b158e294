"""Reads for images."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, CharField, F, FloatField, Q, QuerySet, Value, When

from labeling.core.errors import NotFound
from labeling.images.models import Image, ImageStatus
from labeling.projects.models import ROLE_RANK, Project, Role
from labeling.projects.selectors import project_get_for_user, project_role


def image_list(*, project: Project, mask_gold: bool = False) -> QuerySet[Image]:
    """The project's images, with ``shown_status``, ``shown_label`` and ``shown_agreement``
    for the filters: as the caller may see them (``gold_masked``)."""
    return images_shown(Image.objects.filter(project=project), mask_gold=mask_gold)


def gold_masked(*, user: AbstractBaseUser, project: Project) -> bool:
    """Whether ``user`` must see the project's gold questions as unlabeled images: everyone
    but its admins (an annotator who could tell a gold question from other tasks would answer
    it with more care than the others, and the measurement would be worth nothing)."""
    role = project_role(user=user, project=project)
    return role is None or ROLE_RANK[Role(role)] < ROLE_RANK[Role.ADMIN]


def images_shown(queryset: QuerySet[Image], *, mask_gold: bool) -> QuerySet[Image]:
    return queryset.alias(**image_shown_fields(mask_gold=mask_gold))


def image_shown_fields(*, mask_gold: bool) -> dict[str, object]:
    """``shown_status``, ``shown_label`` and ``shown_agreement``: an image's fields as the
    caller may see them (a gold question as an unlabeled image, with ``mask_gold``)."""
    if not mask_gold:
        return {
            "shown_status": F("status"),
            "shown_label": F("consensus_label"),
            "shown_agreement": F("agreement"),
        }
    gold = Q(gold_label__isnull=False)
    return {
        "shown_status": Case(
            When(gold, then=Value(ImageStatus.UNLABELED.value)),
            default=F("status"),
            output_field=CharField(),
        ),
        "shown_label": Case(
            When(gold, then=Value(None)), default=F("consensus_label"), output_field=CharField()
        ),
        "shown_agreement": Case(
            When(gold, then=Value(None)), default=F("agreement"), output_field=FloatField()
        ),
    }


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
