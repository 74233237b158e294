"""How annotations react to changes owned by lower apps (``labeling.core.events``); connected
in ``AnnotationsConfig.ready()``."""

from __future__ import annotations

import uuid

from django.dispatch import receiver

from labeling.annotations.consensus import consensus_recompute, consensus_refit
from labeling.annotations.models import Annotation, AnnotationSource, GoldAnswer, LabelReview
from labeling.core import events
from labeling.core.errors import ValidationFailed


@receiver(events.images_labeled, dispatch_uid="annotations.record_imported_labels")
def record_imported_labels(sender, *, project, images, source: str, user, **_) -> None:
    """An import's labels are the importer's annotations (source ``import``), written with the
    images' rows, so an image's history always explains its consensus."""
    if source != AnnotationSource.IMPORT:
        return
    Annotation.objects.bulk_create(
        Annotation(
            image=image,
            annotator=user,
            label=image.consensus_label,
            client_id=uuid.uuid4(),
            source=AnnotationSource.IMPORT,
        )
        for image in images
    )


@receiver(events.project_settings_changed, dispatch_uid="annotations.settings_changed")
def settings_changed(sender, *, project, changed: dict, **_) -> None:
    """A class that has annotations cannot be removed (renaming it is the way); a new
    ``annotations_per_image`` judges the waiting images again; a new ``consensus_method``
    judges every image with several votes again."""
    if "labels" in changed:
        before, after = changed["labels"]
        _refuse_removing_used_classes(project, [label for label in before if label not in after])
    if "annotations_per_image" in changed:
        consensus_recompute(project=project)
    if "consensus_method" in changed:
        consensus_refit(project=project)  # every multi-vote image, under the new method


def _refuse_removing_used_classes(project, removed: list[str]) -> None:
    if not removed:
        return
    used = sorted(
        set(
            Annotation.objects.filter(image__project=project, label__in=removed).values_list(
                "label", flat=True
            )
        )
    )
    if used:
        raise ValidationFailed(
            f"cannot remove classes that already have annotations: {used} "
            f"(to rename one: POST /api/projects/{project.pk}/labels/rename/ "
            f'{{"old": ..., "new": ...}})',
            code="labels",
        )


@receiver(events.class_renamed, dispatch_uid="annotations.rename_labels")
def rename_labels(sender, *, project, old: str, new: str, **_) -> None:
    """Every annotation, gold answer and review that names the class takes its new name,
    under the rename's lock (a confirmed label stays confirmed under its new name)."""
    Annotation.objects.filter(image__project=project, label=old).update(label=new)
    answers = GoldAnswer.objects.filter(image__project=project)
    answers.filter(label=old).update(label=new)
    answers.filter(expected=old).update(expected=new)
    reviews = LabelReview.objects.filter(project=project)
    for field in ("given_label", "model_label", "label_after"):
        reviews.filter(**{field: old}).update(**{field: new})
