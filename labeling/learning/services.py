"""When the learning loop queues a run: the retrain trigger, the cold start, the ordering of
new images, a change of strategy, the label check after a round. Policy only: the runs
themselves are requested, claimed and finished through ``labeling.learning.runs``. Called by
the receivers of the domain events (``labeling.learning.receivers``).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction

from labeling.core.errors import Conflict, ValidationFailed
from labeling.images.models import Image, ImageStatus
from labeling.learning import selectors
from labeling.learning.backbones import backbone_newest
from labeling.learning.models import (
    FOLLOW_UPS,
    Backbone,
    ModelVersion,
    RunLane,
    RunStatus,
    RunTrigger,
    TrainingRun,
)
from labeling.learning.runs import ORDERING_ONLY, run_cancel_queued, run_request
from labeling.learning.writeback import write_cold_start
from labeling.projects.models import Project, Strategy
from training.contracts import HEAD_FIT

logger = logging.getLogger(__name__)


def run_request_cold_start(*, project: Project) -> TrainingRun | None:
    """After images arrive in a project that has no model yet: queue a run that orders the
    queue for coverage (typical, diverse images first; see training.acquisition), so the
    first labels span the data instead of falling where insertion order or chance puts them.
    Random projects keep their random order; a queued run of any kind covers the new images
    too, since it reads the pool when it starts."""
    if project.strategy == Strategy.RANDOM:
        return None
    if ModelVersion.objects.filter(project=project).exists():
        return None
    return _queue_cold_start(project)


def _queue_cold_start(project: Project) -> TrainingRun | None:
    if not Image.objects.filter(project=project, status=ImageStatus.UNLABELED).exists():
        return None
    run, created = run_request(project=project, trigger=RunTrigger.COLD_START)
    if created:
        logger.info("cold-start ordering of %s queued (run %d)", project.slug, run.pk)
    return run


def run_request_after_upload(*, project: Project) -> TrainingRun | None:
    """After images arrive: before any model, a cold-start ordering; with an active model, a
    ``new_images`` run that scores just the new images with it and slots them into the queue
    (``labeling.learning.jobs.new_images``), unless a run is queued already (it reads the pool when
    it starts). Versions with none active: the next training run orders the queue."""
    versions = ModelVersion.objects.filter(project=project).values_list("is_active", flat=True)
    active = set(versions.order_by().distinct())  # {}: no model; {False}: none active
    if not active:
        return None if project.strategy == Strategy.RANDOM else _queue_cold_start(project)
    if True not in active:
        return None
    if (
        TrainingRun.objects.filter(project=project, lane=RunLane.MAIN, status=RunStatus.QUEUED)
        .exclude(trigger__in=FOLLOW_UPS)  # they give way (runs.run_request)
        .exists()
    ):
        return None
    run, created = run_request(project=project, trigger=RunTrigger.NEW_IMAGES)
    if created:
        logger.info("new images in %s: scoring them queued (run %d)", project.slug, run.pk)
    return run


def run_strategy_changed(*, project: Project) -> TrainingRun | None:
    """After the project's acquisition strategy changed: order the queue by the new one now,
    not at the next retrain.

    - With an active model: queue a re-score of the pool (an ``activation`` run without a
      source version: it uses the model active when it runs, so a training run that is
      running now and promotes a new model is not rolled back), unless a run that scores the
      whole pool is queued already - that one reads the new strategy when it starts.
    - No model, now ``random``: the cold-start order gives way to random order at once (a
      queued cold start is cancelled).
    - No model, now model-driven: a cold-start ordering, as for a new upload.
    """
    versions = ModelVersion.objects.filter(project=project)
    if versions.filter(is_active=True).exists():
        queued = TrainingRun.objects.filter(
            project=project, lane=RunLane.MAIN, status=RunStatus.QUEUED
        )
        if queued.exclude(trigger__in=[*ORDERING_ONLY, *FOLLOW_UPS]).exists():
            return None
        run, _ = run_request(project=project, trigger=RunTrigger.ACTIVATION)
        logger.info("%s now uses %s: queue re-scored by run %d", project.slug,
                    project.strategy, run.pk)  # fmt: skip
        return run
    if versions.exists():
        return None  # versions, none active: the next training run orders the queue
    if project.strategy != Strategy.RANDOM:
        return run_request_cold_start(project=project)
    with transaction.atomic():
        run_cancel_queued(project=project, trigger=RunTrigger.COLD_START)
        write_cold_start(project, head=[])  # no head: every waiting image in random order
    return None


def run_maybe_trigger(*, project: Project) -> TrainingRun | None:
    """Queue an automatic run once ``retrain_every`` consensus labels have arrived since the
    last run's snapshot. Checked after images are labeled and when ``retrain_every``
    changes."""
    if project.retrain_every <= 0:
        return None
    busy = (
        TrainingRun.objects.filter(
            project=project, lane=RunLane.MAIN, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
        )
        .exclude(status=RunStatus.QUEUED, trigger__in=ORDERING_ONLY)  # superseded below
        # A follow-up gives way while queued, and a running one must not swallow the labels
        # that arrive meanwhile: the round is queued behind it.
        .exclude(trigger__in=FOLLOW_UPS)
    )
    if busy.exists():
        return None
    last = selectors.last_round_snapshot(project=project)
    labeled = Image.objects.filter(project=project, status=ImageStatus.LABELED).count()
    if labeled - last < project.retrain_every:
        return None
    run, created = run_request(project=project, trigger=RunTrigger.AUTOMATIC)
    if created:
        logger.info("automatic retrain of %s at %d labels (run %d)", project.slug, labeled, run.pk)
    return run


def run_maybe_pretrain(*, project: Project) -> TrainingRun | None:
    """After images arrive: queue the project's backbone, unless one is queued or running.

    - A deployment that names weights (``LABELLOOP_BACKBONE_WEIGHTS``) imports them once per
      project, with its first images.
    - Otherwise, with ``LABELLOOP_PRETRAIN_MIN_IMAGES`` images or more (0: never by itself), a
      self-supervised pretraining, and another once the pool has grown by
      ``LABELLOOP_PRETRAIN_GROWTH`` since the images the newest backbone saw.
    """
    least = settings.LABELLOOP_PRETRAIN_MIN_IMAGES
    if not settings.LABELLOOP_BACKBONE_WEIGHTS and least <= 0:
        return None  # neither imported weights nor automatic pretraining: no query at all
    background = TrainingRun.objects.filter(
        project=project, lane=RunLane.BACKGROUND, status__in=[RunStatus.QUEUED, RunStatus.RUNNING]
    )
    if background.exists():
        return None
    newest = Backbone.objects.filter(project=project).order_by("-number").first()
    if settings.LABELLOOP_BACKBONE_WEIGHTS:
        if newest is not None:
            return None
        params = {
            "source": settings.LABELLOOP_BACKBONE_WEIGHTS,
            "sha256": settings.LABELLOOP_BACKBONE_SHA256,
            "input_size": settings.LABELLOOP_BACKBONE_INPUT_SIZE,
        }
        run, _ = run_request(project=project, trigger=RunTrigger.BACKBONE_IMPORT, params=params)
        return run
    images = Image.objects.filter(project=project).count()
    if images < least:
        return None
    if newest is not None:
        if newest.source != Backbone.Source.PRETRAIN:
            return None  # imported weights stay until an admin asks for a pretraining
        if images < newest.images_seen * (1 + settings.LABELLOOP_PRETRAIN_GROWTH):
            return None
    run, created = run_request(project=project, trigger=RunTrigger.PRETRAIN)
    if created:
        logger.info("pretraining of %s's backbone queued at %d images (run %d)", project.slug,
                    images, run.pk)  # fmt: skip
    return run


def run_after_backbone(*, project: Project) -> TrainingRun | None:
    """A new backbone: a round on it now, so the queue improves at once; before any label, a
    cold start that orders the queue by coverage of its feature space."""
    if not Image.objects.filter(project=project, status=ImageStatus.LABELED).exists():
        # No labels yet: the first ones are chosen for coverage in the backbone's space.
        return run_request_cold_start(project=project)
    run, _ = run_request(project=project, trigger=RunTrigger.AUTOMATIC)
    return run


# Smallest pool a pretraining makes sense on (one batch of SimCLR pairs needs some variety).
PRETRAIN_MIN_POOL = 16


def backbone_request(
    *, project: Project, trigger: str, params: dict, user=None
) -> tuple[TrainingRun, bool]:
    """An admin asks for a pretraining or an import: queued in the background lane. A
    background run already queued is replaced by this request (the newest ask wins); one that
    is running finishes first. Returns (run, created)."""
    if trigger == RunTrigger.PRETRAIN:
        images = Image.objects.filter(project=project).count()
        if images < PRETRAIN_MIN_POOL:
            raise ValidationFailed(
                f"pretraining needs at least {PRETRAIN_MIN_POOL} images; this project has {images}",
                code="too_few_images",
            )
    with transaction.atomic():
        run, created = run_request(project=project, trigger=trigger, user=user, params=params)
        if not created:
            run.trigger, run.params, run.requested_by = trigger, params, user
            run.save(update_fields=["trigger", "params", "requested_by"])
    return run, created


# The runs that train a model: a label check and a fine-tune follow them.
ROUNDS = (RunTrigger.MANUAL, RunTrigger.AUTOMATIC)


def _round_due_a_follow_up(main) -> TrainingRun | None:
    """The newest finished round of the main-lane runs ``main``, unless another main-lane run
    is queued (it goes first; its own end checks again) or there is none."""
    if main.filter(status=RunStatus.QUEUED).exists():
        return None
    return (
        main.filter(status=RunStatus.SUCCEEDED, trigger__in=ROUNDS, finished_at__isnull=False)
        .order_by("-finished_at")
        .first()
    )


def run_maybe_label_check(*, project: Project) -> TrainingRun | None:
    """After a main-lane run finished: queue a label check (``labeling.learning.jobs.
    label_check``) of the labels the newest round trained on, once the project has
    ``LABELLOOP_LABEL_CHECK_MIN_LABELS`` consensus labels, unless one was queued since that
    round (whatever became of it: a failed or cancelled check is not retried) or another
    main-lane run is queued (it goes first; its own end checks again). A queued check gives
    way to any other run (``runs.run_request``) and comes back here when that run ends."""
    least = settings.LABELLOOP_LABEL_CHECK_MIN_LABELS
    if least <= 0:
        return None
    main = TrainingRun.objects.filter(project=project, lane=RunLane.MAIN)
    last_round = _round_due_a_follow_up(main)
    if last_round is None:
        return None
    if main.filter(trigger=RunTrigger.LABEL_CHECK, created_at__gte=last_round.finished_at).exists():
        return None
    labeled = Image.objects.filter(project=project, status=ImageStatus.LABELED).count()
    if labeled < least:
        return None
    run, created = run_request(project=project, trigger=RunTrigger.LABEL_CHECK)
    if created:
        logger.info("label check of %s queued at %d labels (run %d)", project.slug, labeled,
                    run.pk)  # fmt: skip
    return run


def run_maybe_fine_tune(*, project: Project) -> TrainingRun | None:
    """After a main-lane run finished: queue a fine-tune (``labeling.learning.jobs.fine_tune``)
    of the model the newest round fitted on the project's newest backbone, unless
    ``LABELLOOP_FINE_TUNE_STEPS`` is 0, another main-lane run is queued (it goes first; its
    own end checks again), or one was queued since that round (whatever became of it). The
    run names its starting model in ``params["base_version"]``."""
    if settings.LABELLOOP_FINE_TUNE_STEPS <= 0:
        return None
    main = TrainingRun.objects.filter(project=project, lane=RunLane.MAIN)
    last_round = _round_due_a_follow_up(main)
    if last_round is None:
        return None
    base = ModelVersion.objects.filter(run=last_round).first()
    if base is None or base.metrics.get("trained") != HEAD_FIT:
        return None
    if base.backbone_id is None or base.backbone != backbone_newest(project):
        return None  # a newer backbone came since: the next round fits a head on it first
    if main.filter(trigger=RunTrigger.FINE_TUNE, created_at__gte=last_round.finished_at).exists():
        return None
    run, created = run_request(
        project=project, trigger=RunTrigger.FINE_TUNE, params={"base_version": base.pk}
    )
    if created:
        logger.info("fine-tune of %s v%d queued (run %d)", project.slug, base.number, run.pk)
    return run


def label_check_request(*, project: Project, user=None) -> tuple[TrainingRun, bool]:
    """An admin asks for a label check now: queued in the main lane. Returns (run, created);
    a label check already queued is returned, never a second. Another run queued in the lane
    is a conflict: a check would give way to it anyway, and one follows a round by itself."""
    run, created = run_request(project=project, trigger=RunTrigger.LABEL_CHECK, user=user)
    if run.trigger != RunTrigger.LABEL_CHECK:
        raise Conflict(
            f"run {run.pk} ({run.trigger}) is queued in this project's main lane: ask for a "
            "label check once it has started",
            code="lane_busy",
        )
    return run, created
