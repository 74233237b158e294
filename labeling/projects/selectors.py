"""Reads for projects, and the one place that decides who may touch a project."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from labeling.core.errors import NotFound, PermissionDenied
from labeling.projects.models import ROLE_RANK, Membership, Project, Role


def project_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Project]:
    if user.is_staff:
        return Project.objects.all()
    return Project.objects.filter(memberships__user=user)


def project_role(*, user: AbstractBaseUser, project: Project) -> str | None:
    """The user's role in the project; staff act as project admins everywhere."""
    if user.is_staff:
        return Role.ADMIN
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def project_get_for_user(
    *, user: AbstractBaseUser, project_id: int | str, role: str = Role.VIEWER
) -> Project:
    """The project if ``user`` holds at least ``role`` in it.

    Non-members get NotFound (a project's existence is not disclosed); members with a lesser
    role get PermissionDenied.
    """
    try:
        project = Project.objects.get(pk=int(project_id))
    except (Project.DoesNotExist, ValueError, TypeError):
        raise NotFound("project not found") from None
    held = project_role(user=user, project=project)
    if held is None:
        raise NotFound("project not found")
    project_require_role(project=project, held=held, needed=role)
    return project


def project_require_role(*, project: Project, held: str, needed: str) -> None:
    if ROLE_RANK[Role(held)] < ROLE_RANK[Role(needed)]:
        raise PermissionDenied(
            f"this needs the {needed} role in project {project.slug!r}; you are {held}",
            details={"required_role": needed, "your_role": held},
        )


def membership_list(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user_id")
