"""The webhook outbox hears the domain events (``labeling.core.events``) and queues the
deliveries they call for, inside the transaction of the change that caused them (so an
announced label or run is always a committed one); connected in ``WebhooksConfig.ready()``."""

from __future__ import annotations

from django.dispatch import receiver

from labeling.core import events
from labeling.webhooks.services import (
    webhook_emit_annotator_quality_low,
    webhook_emit_images_labeled,
    webhook_emit_run,
    webhook_emit_version_activated,
)


@receiver(events.images_labeled, dispatch_uid="webhooks.images_labeled")
def images_labeled(sender, *, project, images, **_) -> None:
    webhook_emit_images_labeled(images=images, project=project)  # image.labeled


@receiver(events.run_finished, dispatch_uid="webhooks.run_finished")
def run_finished(sender, *, run_id: int, **_) -> None:
    webhook_emit_run(run_id=run_id)  # run.succeeded / run.failed


@receiver(events.version_activated, dispatch_uid="webhooks.version_activated")
def version_activated(sender, *, version, user, **_) -> None:
    webhook_emit_version_activated(version=version, user=user)  # model.activated


@receiver(events.annotator_quality_low, dispatch_uid="webhooks.annotator_quality_low")
def annotator_quality_low(
    sender, *, project, user, answered: int, correct: int, accuracy: float, threshold: float, **_
) -> None:
    webhook_emit_annotator_quality_low(  # annotator.quality_low
        project=project,
        username=user.get_username(),
        answered=answered,
        correct=correct,
        accuracy=accuracy,
        threshold=threshold,
    )
