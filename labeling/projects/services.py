"""Writes for projects and memberships."""

from __future__ import annotations

import hashlib
import unicodedata
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
    "consensus_method",
    "gold_rate",
    "gold_alert_accuracy",
    "semi_supervised",
)


DESCRIPTION_MAX = 10_000  # characters: room for labeling guidelines, not a document store
NAME_CONSTRAINT = "project_name_unique_ci"
# Characters that reorder how text is displayed (embeddings, overrides, isolates and the
# implicit marks): in a class or project name they make "gnp.exe" read as "exe.png".
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


def _clean_text(value: str, *, what: str, code: str, max_length: int) -> str:
    """``value`` stripped and in Unicode NFC (so "é" typed two ways is one name), or a
    ``ValidationFailed`` naming the first bidirectional control character in it, or the
    limit (NFC spells a few characters with two code points, so it may grow past it)."""
    cleaned = unicodedata.normalize("NFC", value.strip())
    if len(cleaned) > max_length:
        raise ValidationFailed(
            f"{what} is at most {max_length} characters in Unicode NFC, got {len(cleaned)}",
            code=code,
        )
    bad = next((char for char in cleaned if char in BIDI_CONTROLS), None)
    if bad is not None:
        raise ValidationFailed(
            f"{what} {cleaned!r} contains U+{ord(bad):04X} {unicodedata.name(bad)}, a "
            "bidirectional control character, which can make text display as something else",
            code=code,
            details={"character": f"U+{ord(bad):04X}"},
        )
    return cleaned


def _check_name(name: str) -> str:
    cleaned = _clean_text(name, what="the project name", code="name", max_length=200)
    if not any(char.isalnum() for char in cleaned):  # letters or digits of any script
        raise ValidationFailed("the project name must contain letters or digits", code="name")
    return cleaned


def _check_description(description: str) -> str:
    if len(description) > DESCRIPTION_MAX:
        raise ValidationFailed(
            f"description is at most {DESCRIPTION_MAX} characters, got {len(description)}",
            code="description",
        )
    return description


def _slug_for(name: str) -> str:
    """An ASCII slug (it names export files and CLI arguments): the name's Latin letters and
    digits, else, for a name with none (Hebrew, Greek, CJK...), ``project-`` and a digest."""
    digest = hashlib.sha256(name.casefold().encode()).hexdigest()[:10]
    return slugify(name)[:100] or f"project-{digest}"


def _name_taken(name: str) -> Conflict:
    return Conflict(
        f"a project named {name!r} already exists (names are compared ignoring case)",
        code="name_taken",
        details={"name": name},
    )


def _check_labels(labels: list[str]) -> list[str]:
    """The classes as given, trimmed and NFC; at least two, none blank, no repeats. Whether a
    class that has labels may be removed is for the apps that hold labels to say: they receive
    ``project_settings_changed`` inside the update's transaction and refuse by raising."""
    cleaned = [
        _clean_text(label, what="label class", code="labels", max_length=100) for label in labels
    ]
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
    name = _check_name(name)
    _check_description(fields.get("description", ""))
    slug = fields.pop("slug", None) or _slug_for(name)
    try:
        with transaction.atomic():
            project = Project.objects.create(
                name=name, slug=slug, labels=_check_labels(labels), **fields
            )
            Membership.objects.create(project=project, user=creator, role=Role.ADMIN)
    except IntegrityError as exc:
        if NAME_CONSTRAINT in str(exc):
            raise _name_taken(name) from None
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
    if "name" in fields:
        fields["name"] = _check_name(fields["name"])
    if "description" in fields:
        _check_description(fields["description"])
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
        if NAME_CONSTRAINT in str(exc):
            raise _name_taken(fields["name"]) from None
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
    new = _clean_text(new, what="the new class name", code="labels", max_length=100)
    if not new:
        raise ValidationFailed("the new class name cannot be blank", code="labels")
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
    # A disabled account cannot be added, and the answer is the same as for a name nobody
    # has: an admin of one project learns nothing about the accounts that exist.
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise NotFound(f"no active user named {username!r}", code="user_not_found")
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
