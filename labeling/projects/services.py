"""Writes for projects and memberships."""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Now
from django.utils.text import slugify

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


def _check_labels(labels: list[str], *, project: Project | None = None) -> list[str]:
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
    if project is not None:
        removed = [label for label in project.labels if label not in cleaned]
        if removed:
            from labeling.annotations.models import Annotation

            used = sorted(
                set(
                    Annotation.objects.filter(
                        image__project=project, label__in=removed
                    ).values_list("label", flat=True)
                )
            )
            if used:
                raise ValidationFailed(
                    f"cannot remove classes that already have annotations: {used} "
                    f"(to rename one: POST /api/projects/{project.pk}/labels/rename/ "
                    f'{{"old": ..., "new": ...}})',
                    code="labels",
                )
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
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise ValidationFailed(f"unknown project fields: {sorted(unknown)}")
    votes_before, retrain_before = project.annotations_per_image, project.retrain_every
    strategy_before = project.strategy
    if "name" in fields:
        fields["name"] = _check_name(fields["name"])
    if "description" in fields:
        _check_description(fields["description"])
    try:
        with transaction.atomic():
            if "labels" in fields:
                # Checked under the project's lock: a rename or a label landing meanwhile
                # (they read the classes FOR KEY SHARE) cannot slip past the check.
                _lock(project)
                fields["labels"] = _check_labels(fields["labels"], project=project)
            for name, value in fields.items():
                setattr(project, name, value)
            project.save(update_fields=[*fields, "updated_at"])
    except IntegrityError as exc:
        if NAME_CONSTRAINT in str(exc):
            raise _name_taken(fields["name"]) from None
        raise ValidationFailed(f"invalid project settings ({exc.__cause__ or exc})") from None
    if project.annotations_per_image != votes_before:
        from labeling.annotations.services import consensus_recompute

        consensus_recompute(project=project)  # checks retrain_every when it labels images
    if project.retrain_every != retrain_before:
        # Lowered (or turned on) below the labels already waiting: retrain now, not a label
        # later. Never a second queued run, so a check after the recompute's is harmless.
        from labeling.learning.services import run_maybe_trigger

        run_maybe_trigger(project=project)
    if project.strategy != strategy_before:
        from labeling.learning.services import run_strategy_changed

        run_strategy_changed(project=project)
    return project


def _lock(project: Project) -> None:
    """Lock the project row FOR UPDATE and refresh the classes and their renames from it."""
    locked = Project.objects.select_for_update().only("labels", "label_renames").get(pk=project.pk)
    project.labels, project.label_renames = locked.labels, locked.label_renames


def project_labels_for_write(project: Project) -> tuple[list[str], list[list[str]]]:
    """The project's classes and rename log as they are now, read FOR KEY SHARE inside the
    caller's transaction, for a write that stores a class name (a label, an import, a score
    write-back). Such writes share the lock; a rename (FOR UPDATE) waits for them and they
    for it, so nothing written under it names a class the rename has just replaced. A caller
    may name a class by an old name: ``label_resolve``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT labels, label_renames FROM projects_project WHERE id = %s FOR KEY SHARE",
            [project.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFound("the project no longer exists", code="project_not_found")
    renames = json.loads(row[1]) if isinstance(row[1], str) else row[1]  # Django reads jsonb raw
    return list(row[0]), renames


def follow_renames(names: list[str | None], renames: list[list[str]]) -> list[str | None]:
    """``names`` as they are called after ``renames`` ([old, new] pairs, oldest first)."""
    names = list(names)
    for old, new in renames:
        names = [new if name == old else name for name in names]
    return names


def label_resolve(label: str, labels: list[str], renames: list[list[str]]) -> str | None:
    """The class ``label`` names now: itself while the project has a class of that name, else
    the name renames gave it (a client that read the classes before a rename), else None."""
    if label in labels:
        return label
    label = unicodedata.normalize("NFC", label)  # classes are stored NFC; a client may not be
    if label in labels:
        return label
    named = follow_renames([label], renames)[0]
    return named if named in labels else None


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
        from labeling.annotations.models import Annotation
        from labeling.images.models import Image

        Annotation.objects.filter(image__project=project, label=old).update(label=new)
        images = Image.objects.filter(project=project)
        images.filter(consensus_label=old).update(consensus_label=new, updated_at=Now())
        images.filter(predicted_label=old).update(predicted_label=new, updated_at=Now())
    return project


def project_delete(*, project: Project) -> None:
    """Delete a project and everything in it, in a few set-based statements.

    Django's ``Model.delete()`` would first load every related row into memory to run its
    cascade in Python: fine for ten rows, not for a million images.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        image_ids = "SELECT id FROM images_image WHERE project_id = %s"
        cursor.execute(
            f"DELETE FROM annotations_leaselog WHERE image_id IN ({image_ids})", [project.id]
        )
        cursor.execute(
            f"DELETE FROM annotations_annotation WHERE image_id IN ({image_ids})", [project.id]
        )
        cursor.execute(
            f"DELETE FROM learning_imagescore WHERE image_id IN ({image_ids})", [project.id]
        )
        cursor.execute("DELETE FROM images_image WHERE project_id = %s", [project.id])
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
