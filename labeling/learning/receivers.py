"""How the learning loop reacts to changes owned by lower apps (``labeling.core.events``);
connected in ``LearningConfig.ready()``: labels queue a retrain, uploads queue an ordering of
the new images, a new strategy re-orders the queue, a finished round queues a label check,
a renamed class renames the class the stored activation maps explain, a deleted project's
similarity index goes with it."""

from __future__ import annotations

from django.db import transaction
from django.dispatch import receiver

from labeling.annotations.consensus import CONSENSUS
from labeling.annotations.models import AnnotationSource
from labeling.core import events
from labeling.learning.model_exports import model_exports_delete_files
from labeling.learning.models import Explanation, ModelExport, RunLane, TrainingRun
from labeling.learning.services import (
    run_maybe_fine_tune,
    run_maybe_label_check,
    run_maybe_pretrain,
    run_maybe_trigger,
    run_request_after_upload,
    run_strategy_changed,
)
from labeling.learning.similar import similar_index_drop


@receiver(events.images_added, dispatch_uid="learning.images_added")
def images_added(sender, *, project, labeled: int, **_) -> None:
    """Imported labels count toward retrain_every like any others: enough of them queue a
    training run now (taking over a queued cold start). Otherwise the worker orders the new
    images: for coverage before any model, else by the active model's scores."""
    run_maybe_pretrain(project=project)  # the background lane: rounds never wait for it
    if labeled and run_maybe_trigger(project=project):
        return
    run_request_after_upload(project=project)


@receiver(events.images_labeled, dispatch_uid="learning.images_labeled")
def images_labeled(sender, *, project, source: str, **_) -> None:
    """New consensus labels may have reached retrain_every."""
    if source == AnnotationSource.IMPORT:
        return  # the upload's images_added checks once, after its last batch
    if source == CONSENSUS:
        # A recompute inside an admin's settings change: counted in that transaction.
        run_maybe_trigger(project=project)
        return
    # A submission holds its image's lock until it commits; count once it has, so that two
    # submissions committing together cannot both miss the threshold.
    transaction.on_commit(lambda: run_maybe_trigger(project=project))


@receiver(events.project_settings_changed, dispatch_uid="learning.settings_changed")
def settings_changed(sender, *, project, changed: dict, **_) -> None:
    if "retrain_every" in changed:
        # Lowered (or turned on) below the labels already waiting: retrain now, not a label
        # later. Never a second queued run, so a check after a recompute's is harmless.
        run_maybe_trigger(project=project)
    if "strategy" in changed:
        run_strategy_changed(project=project)


@receiver(events.run_finished, dispatch_uid="learning.run_finished")
def run_finished(sender, *, run_id: int, **_) -> None:
    """A main-lane run ended: a round on a backbone may be due a fine-tune, a round's labels a
    label check (or one that gave way to this run may be due again); one at a time, the
    fine-tune first: the queue is ordered by the better model sooner. Once the run's end has
    committed: a failure to queue them is logged (robust) and never undoes the run's success."""
    run = TrainingRun.objects.filter(pk=run_id).select_related("project").first()
    if run is None or run.lane != RunLane.MAIN:
        return
    project = run.project
    transaction.on_commit(lambda: run_maybe_fine_tune(project=project), robust=True)
    transaction.on_commit(lambda: run_maybe_label_check(project=project), robust=True)


@receiver(events.project_deleted, dispatch_uid="learning.delete_export_files")
def project_deleted(sender, *, project, **_) -> None:
    """The project's exported model files go once its rows are gone (committed): an export's
    file serves only its row. Its rows go with the versions (foreign keys)."""
    keys = list(
        ModelExport.objects.filter(model_version__project=project)
        .exclude(file_key="")
        .values_list("file_key", flat=True)
    )
    if keys:
        transaction.on_commit(lambda: model_exports_delete_files(keys=keys), robust=True)


@receiver(events.class_renamed, dispatch_uid="learning.rename_explanations")
def rename_explanations(sender, *, project, old: str, new: str, **_) -> None:
    """The maps already drawn name the class they explain by its new name (under the rename's
    lock, like the images' predictions)."""
    Explanation.objects.filter(model_version__project=project, label=old).update(label=new)


@receiver(events.project_deleted, dispatch_uid="learning.drop_similar_index")
def drop_similar_index(sender, *, project, **_) -> None:
    """The project's similarity index is a table of its own, which no foreign key ties to the
    project: dropped in the deletion's transaction."""
    similar_index_drop(project_id=project.pk)
