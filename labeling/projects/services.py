"""Writes for projects and memberships."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils.text import slugify

from labeling.core import events
from labeling.core.errors import Conflict, NotFound, ValidationFailed
from labeling.projects.models import Membership, Project, Role

EDITABLE = (
    "name",
    "description",
    "labels",
    "input_size",
    "input_channels",
    "annotations_per_image",
    "strategy",
    "retrain_every",
    "exploration_fraction",
    "lease_seconds",
    "show_suggestions",
)


def _check_labels(labels: list[str]) -> list[str]:
    """The classes as given, trimmed; at least two, none blank, no repeats. Whether a class
    that has labels may be removed is for the apps that hold labels to say: they receive
    ``project_settings_changed`` inside the update's transaction and refuse by raising."""
    cleaned = [label.strip() for label in labels]
    if len(cleaned) < 2:
        raise ValidationFailed("a project needs at least two label classes", code="labels")
    if any(not label for label in cleaned):
        raise ValidationFailed("label classes cannot be blank", code="labels")
    dupes = sorted({label for label in cleaned if cleaned.count(label) > 1})
    if dupes:
        raise ValidationFailed(f"label classes must be unique; repeated: {dupes}", code="labels")
    return cleaned


def project_create(
    *, creator: AbstractBaseUser, name: str, labels: list[str], **fields: Any
) -> Project:
    unknown = set(fields) - set(EDITABLE) - {"slug"}
    if unknown:
        raise ValidationFailed(f"unknown project fields: {sorted(unknown)}")
    slug = fields.pop("slug", None) or slugify(name)[:100]
    if not slug:
        raise ValidationFailed("the project name must contain letters or digits", code="name")
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name, slug=slug, labels=_check_labels(labels), **fields
            )
            Membership.objects.create(project=project, user=creator, role=Role.ADMIN)
    except IntegrityError as exc:
        if "slug" in str(exc):
            raise Conflict(f"a project with slug {slug!r} already exists", code="slug") from None
        raise ValidationFailed(f"invalid project settings ({exc.__cause__ or exc})") from None
    return project


def project_update(*, project: Project, **fields: Any) -> Project:
    """Change the settings in ``fields``; one transaction with what the change causes
    elsewhere (``project_settings_changed``: a consensus recompute when the overlap changed,
    a retrain check when ``retrain_every`` did, a re-ordering of the queue for a new strategy;
    a class with labels may not be removed)."""
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"unknown project fields: {sorted(unknown)}")
    before = {name: getattr(project, name) for name in fields}
    try:
        with transaction.atomic():
            if "labels" in fields:
                # Checked under the project's lock: a rename or a label landing meanwhile
                # (they read the classes FOR KEY SHARE) cannot slip past the check.
                _lock(project)
                before["labels"] = list(project.labels)
                fields["labels"] = _check_labels(fields["labels"])
            for name, value in fields.items():
                setattr(project, name, value)
            project.save(update_fields=[*fields, "updated_at"])
            changed = {
                name: (before[name], getattr(project, name))
                for name in fields
                if before[name] != getattr(project, name)
            }
            if changed:
                events.project_settings_changed.send(
                    sender=Project, project=project, changed=changed
                )
    except IntegrityError as exc:
        raise ValidationFailed(f"invalid project settings ({exc.__cause__ or exc})") from None
    return project


def _lock(project: Project) -> None:
    """Lock the project row FOR UPDATE and refresh the classes and their renames from it."""
    locked = Project.objects.select_for_update().only("labels", "label_renames").get(pk=project.pk)
    project.labels, project.label_renames = locked.labels, locked.label_renames


def project_label_rename(*, project: Project, old: str, new: str) -> Project:
    """Rename one class everywhere: the project's list (same position, so the same model
    output), every annotation, consensus and prediction that names it. One transaction under
    the project's lock; models trained before translate their class names through
    ``label_renames``, so suggestions and predictions keep working without a retrain."""
    new = new.strip()
    if not new:
        raise ValidationFailed("the new class name cannot be blank", code="labels")
    if len(new) > 100:
        raise ValidationFailed(
            f"class names are at most 100 characters, got {len(new)}", code="labels"
        )
    with transaction.atomic():
        _lock(project)
        if old not in project.labels:
            raise ValidationFailed(
                f"{old!r} is not one of the project's classes: {', '.join(project.labels)}",
                code="unknown_label",
            )
        if new == old:
            return project
        if new in project.labels:
            raise Conflict(f"the project already has a class named {new!r}", code="labels")
        project.labels = [new if label == old else label for label in project.labels]
        project.label_renames = [*project.label_renames, [old, new]]
        project.save(update_fields=["labels", "label_renames", "updated_at"])
        # Every row that names the class is rewritten by the app that owns it, under the lock.
        events.class_renamed.send(sender=Project, project=project, old=old, new=new)
    return project


def project_delete(*, project: Project) -> None:
    """Delete a project and everything in it, in a few set-based statements.

    Django's ``Model.delete()`` would first load every related row into memory to run its
    cascade in Python: fine for ten rows, not for a million images. So each app deletes its
    own rows of the project (``project_deleted``, in this transaction; the foreign keys are
    checked at commit), and what is left to cascade here is small.
    """
    with transaction.atomic():
        events.project_deleted.send(sender=Project, project=project)
        project.delete()


def membership_set(*, project: Project, username: str, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationFailed(f"role must be one of {Role.values}, got {role!r}", code="role")
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise NotFound(f"no user named {username!r}", code="user_not_found")
    current = Membership.objects.filter(project=project, user=user).first()
    if current is not None and current.role == Role.ADMIN and role != Role.ADMIN:
        _require_another_admin(project)
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def membership_remove(*, project: Project, username: str) -> None:
    membership = Membership.objects.filter(project=project, user__username=username).first()
    if membership is None:
        raise NotFound(f"{username!r} is not a member of this project", code="not_a_member")
    if membership.role == Role.ADMIN:
        _require_another_admin(project)
    membership.delete()


def _require_another_admin(project: Project) -> None:
    if Membership.objects.filter(project=project, role=Role.ADMIN).count() <= 1:
        raise Conflict("a project must keep at least one admin", code="last_admin")
