"""A project's classes as every app reads them for a write: the current names under the lock
a class rename waits for, and the names a class had before (a client, a model or an import may
still use an old one).

Renames are logged on the project (``Project.label_renames``, oldest first); a model keeps the
class names it was trained with and translates them through the renames made after it.
"""

from __future__ import annotations

import json
import unicodedata

from django.db import connection

from labeling.core.errors import NotFound
from labeling.projects.models import Project


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
