"""The worker: the only bridge between the database and Ray.

    python manage.py worker            # runs until Ctrl-C / SIGTERM
    python manage.py worker --once     # handles what is queued now, then exits

It claims queued training runs (``SELECT ... FOR UPDATE SKIP LOCKED``), heartbeats from a
thread while it works, hands plain dataclasses to ``training/`` (local Ray, or RAY_ADDRESS),
and writes the results back in one transaction, so annotators never see a half-updated queue.
A run can be resumed by another worker: a model version already registered for it is reused,
never trained twice.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Max
from django.utils import timezone

from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning import services
from labeling.learning.coldstart import COLD_START_HEAD, cold_start_order
from labeling.learning.heartbeat import DATABASE_ERRORS, Heartbeat
from labeling.learning.models import ModelVersion, RunStatus, RunTrigger, TrainingRun
from labeling.learning.newcomers import score_newcomers, write_newcomers
from labeling.learning.predictor import Predictor
from labeling.learning.snapshot import Snapshot, take_snapshot, train_config
from labeling.learning.writeback import (
    cache_dir,
    checkpoint_store,
    copy_scores,
    image_refs,
    json_safe,
    local_checkpoint,
    renames_seen,
    write_cold_start,
)
from labeling.projects.services import follow_renames
from labeling.webhooks.delivery import Deliverer
from labeling.webhooks.services import webhook_emit_run, webhook_emit_version_activated

logger = logging.getLogger(__name__)

# Seconds a stopping worker waits for its predictor and webhook threads to wind down.
HELPER_JOIN_SECONDS = 15
# Seconds between attempts to reach a database that went away (restart, failover).
DATABASE_RETRY_SECONDS = 2.0


class Cancelled(Exception):
    """The run was cancelled (or taken over): stop at the stage boundary."""


class Worker:
    def __init__(self, *, poll_seconds: float = 2.0) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.poll_seconds = poll_seconds
        self.stopping = threading.Event()
        self.announced = False  # "ready" is logged once, not on every run_forever(once=True)

    def install_signal_handlers(self) -> None:
        def stop(signum, _frame) -> None:
            name = signal.Signals(signum).name
            logger.info("worker %s: %s received; stopping after this stage", self.name, name)
            self.stopping.set()

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)

    def run_forever(self, *, once: bool = False, predict: bool = True) -> None:
        if not self.announced:
            logger.info("worker %s ready", self.name)
            self.announced = True
        helpers: list[Predictor | Deliverer] = []
        if predict and not once:
            helpers.append(Predictor(self.stopping))
        if not once:
            helpers.append(Deliverer(self.stopping))  # webhooks: sent from here, not requests
        for helper in helpers:
            helper.start()
        try:
            while not self.stopping.is_set():
                try:
                    close_old_connections()
                    services.run_requeue_stale()
                    run = services.run_claim(worker=self.name)
                    if run is not None:
                        self.execute(run)
                        continue
                except DATABASE_ERRORS as exc:
                    if once:
                        raise
                    # A restart or failover: wait for the database instead of exiting. A run
                    # it interrupted keeps its stale heartbeat and is re-queued once it is back.
                    logger.warning(
                        "worker %s: database unavailable (%s); retrying in %g s",
                        self.name,
                        str(exc).strip().splitlines()[0]
                        if str(exc).strip()
                        else type(exc).__name__,
                        DATABASE_RETRY_SECONDS,
                    )
                    connection.close()
                    self.stopping.wait(DATABASE_RETRY_SECONDS)
                    continue
                if once:
                    return
                self.stopping.wait(self.poll_seconds)
        finally:
            # Let the threads finish what they are sending and close their connections, so
            # that a stopping worker does not die with a query in flight.
            if helpers:
                self.stopping.set()
            for helper in helpers:
                helper.join(timeout=HELPER_JOIN_SECONDS)

    # --- one run -------------------------------------------------------------------------

    def execute(self, run: TrainingRun) -> None:
        logger.info(
            "run %d (%s, %s): claimed by %s", run.pk, run.project.slug, run.trigger, self.name
        )
        timings: dict[str, float] = {}
        with Heartbeat(run.pk, self.name) as beat:
            stage = self._stage_runner(beat, timings)
            try:
                if run.trigger == RunTrigger.COLD_START:
                    ordered = stage("order", lambda: cold_start_order(run))
                    stage("write-back", lambda: self._write_back_cold_start(run, ordered, timings))
                    logger.info("run %d: queue ordered for coverage (%s)", run.pk, _brief(timings))
                    return
                if run.trigger == RunTrigger.NEW_IMAGES:
                    self._new_images(run, beat, stage, timings)
                    return
                if run.trigger == RunTrigger.ACTIVATION:
                    # No source version: re-score with whichever model is active now (a
                    # strategy change; a training run may have promoted one meanwhile).
                    version = run.source_version or self._active(run)
                    if version is None:
                        raise RuntimeError("no active model to re-score the queue with")
                    if run.source_version_id is None:  # recorded: the API and run.succeeded
                        TrainingRun.objects.filter(pk=run.pk).update(source_version=version)
                    promote = True
                    metrics = {"activated_version": version.number}
                else:
                    version, promote, metrics = self._train(run, beat, stage)
                # A model kept out still leaves a queue to re-prioritise: the labels since the
                # last scoring took its head, so the active model orders what is left.
                scorer = version if promote else self._active(run) or version
                result = stage("score", lambda: self._score(run, scorer, beat))
                stage(
                    "write-back",
                    lambda: self._write_back(
                        run, version, promote, metrics, result, timings, scorer=scorer
                    ),
                )
                logger.info("run %d: succeeded (%s)", run.pk, _brief(timings))
            except Cancelled:
                if _vanished(run):
                    return
                services.run_fail(run_id=run.pk, worker=self.name, error="", cancelled=True)
                logger.info("run %d: cancelled", run.pk)
            except DATABASE_ERRORS as exc:
                if _database_answers():  # the statement failed (disk full, a timeout, ...)
                    if _vanished(run):
                        return
                    logger.exception("run %d failed", run.pk)
                    services.run_fail(run_id=run.pk, worker=self.name, error=_error_text(exc))
                    return
                # The database went away mid-run (a restart, a failover): not the run's fault.
                # Leave it running; its heartbeat goes stale and it is re-queued once the
                # database is back (at most services.MAX_ATTEMPTS times in all).
                logger.exception("run %d: database lost; the run will be retried", run.pk)
                raise
            except Exception as exc:  # a failed run must be recorded, whatever failed
                if _vanished(run):
                    return
                logger.exception("run %d failed", run.pk)
                services.run_fail(run_id=run.pk, worker=self.name, error=_error_text(exc))

    def _stage_runner(self, beat: Heartbeat, timings: dict[str, float]) -> Callable:
        def stage(name: str, fn: Callable):
            if beat.cancelled.is_set() or (self.stopping.is_set() and name != "write-back"):
                if self.stopping.is_set() and not beat.cancelled.is_set():
                    # Shutting down: leave the run for another worker to pick up.
                    raise SystemExit(0)
                raise Cancelled()
            beat.set(name, 0.0)
            start = time.perf_counter()
            value = fn()
            timings[name] = round(time.perf_counter() - start, 3)
            return value

        return stage

    def _train(self, run: TrainingRun, beat: Heartbeat, stage: Callable):
        from training.contracts import TrainSpec
        from training.train import run_training

        existing = ModelVersion.objects.filter(run=run).first()
        if existing is not None:
            # A previous worker trained and registered this run's model before it died.
            logger.info("run %d: resuming with its registered version %d", run.pk, existing.number)
            return existing, existing.metrics.get("promote", True), existing.metrics
        project = run.project
        snap = stage("snapshot", lambda: take_snapshot(run))
        if not snap.items:
            raise RuntimeError("no consensus labels yet: label some images first")
        workdir = Path(settings.DATA_DIR) / "worker" / f"run-{run.pk}"
        workdir.mkdir(parents=True, exist_ok=True)
        spec = TrainSpec(
            classes=tuple(snap.classes),
            input_size=project.input_size,
            input_channels=project.input_channels,
            items=tuple(snap.items),
            labels=tuple(snap.labels),
            val_items=tuple(snap.val_items),
            val_labels=tuple(snap.val_labels),
            cache_dir=str(cache_dir()),
            checkpoint_path=str(workdir / "model.pt"),
            config=train_config(),
            seed=run.pk,
        )
        result = stage(
            "train", lambda: run_training(spec, progress=lambda s, f: beat.set("train", f))
        )
        metrics = dict(result.metrics) | {
            "val_source": snap.val_source,
            "labels": snap.total,
            "failed_items": len(result.failed_items),
        }
        verdict = stage(
            "evaluate",
            lambda: self._should_promote(run, spec, snap, result.checkpoint_path),
        )
        promote = verdict is None or verdict["promote"]
        metrics["active_accuracy_on_this_val"] = verdict and verdict["active_accuracy"]
        if verdict is not None:
            metrics["promotion"] = verdict
        metrics["promote"] = promote
        version = stage(
            "register", lambda: self._register(run, spec, result.checkpoint_path, metrics, snap)
        )
        return version, promote, metrics

    def _should_promote(self, run, spec, snap: Snapshot, checkpoint_path: str) -> dict | None:
        """Not significantly worse than the active model on this run's validation labels
        (`training.metrics.promotion_verdict`; configurable). None: no comparison to make,
        the new model is promoted."""
        active = self._active(run)
        if active is None or not settings.LABELLOOP_PROMOTE_ONLY_IF_NOT_WORSE:
            return None
        if not snap.val_items or active.metrics.get("val_source") != "random_slice":
            # Nothing held out, or the active model trained on these very labels (it was
            # evaluated on a split): no fair comparison exists, so the newer model wins.
            return None
        import numpy as np

        from training.contracts import ScoreSpec
        from training.metrics import promotion_verdict
        from training.score import run_scoring

        index = {name: i for i, name in enumerate(spec.classes)}
        # The active model's class names as they were called at this run's snapshot.
        renames = snap.renames

        def predicted(path: str, since: int) -> dict[str, int]:
            """Key -> predicted class as an index into this run's classes (-1: a class the
            run does not have). The active model may know the classes in another order, or
            by names renamed since it was trained (``since``: the renames it had seen)."""
            scored = run_scoring(
                ScoreSpec(
                    checkpoint_path=path,
                    items=tuple(snap.val_items),
                    cache_dir=spec.cache_dir,
                    strategy="least_confidence",
                )
            )
            classes = follow_renames(list(scored.classes), renames[since:])
            names = [classes[int(p)] for p in scored.predicted]
            return {key: index.get(name, -1) for key, name in zip(scored.keys, names, strict=True)}

        old = predicted(local_checkpoint(active.checkpoint_key), renames_seen(active))
        new = predicted(checkpoint_path, len(snap.renames))
        truth = dict(zip([r.key for r in snap.val_items], snap.val_labels, strict=True))
        keys = [k for k in truth if k in old and k in new]  # both decoded it
        return promotion_verdict(
            np.array([truth[k] for k in keys]),
            np.array([old[k] for k in keys]),
            np.array([new[k] for k in keys]),
            tolerance=settings.LABELLOOP_PROMOTE_TOLERANCE,
            alpha=settings.LABELLOOP_PROMOTE_ALPHA,
        )

    def _register(self, run, spec, checkpoint_path: str, metrics: dict, snap) -> ModelVersion:
        saved = checkpoint_store(project=run.project, run=run, path=checkpoint_path)
        number = (
            ModelVersion.objects.filter(project=run.project).aggregate(n=Max("number"))["n"] or 0
        ) + 1
        return ModelVersion.objects.create(
            project=run.project,
            run=run,
            number=number,
            checkpoint_key=saved,
            architecture=spec.arch,
            config={
                "arch": spec.arch,
                "input_size": spec.input_size,
                "renames_seen": len(snap.renames),
            },
            metrics=json_safe(metrics),
            labels_used=snap.total,
        )

    def _score(self, run: TrainingRun, version: ModelVersion, beat: Heartbeat):
        """Score the pool (and the labeled images, so disagreements with humans show)."""
        from training.contracts import ScoreSpec
        from training.score import run_scoring

        project = run.project
        rows = list(
            Image.objects.filter(project=project).values_list(
                "id", "sha256", "storage_key", "status"
            )
        )
        items = tuple(image_refs([row[:3] for row in rows]))
        pool = {str(i) for i, _, _, status in rows if status in QUEUE_STATUSES}
        if not items:
            return None
        result = run_scoring(
            ScoreSpec(
                checkpoint_path=local_checkpoint(version.checkpoint_key),
                items=items,
                cache_dir=str(cache_dir()),
                strategy=project.strategy,
                select_size=50,
                # The acquisition batch comes from the pool only; labeled images are scored
                # for their predictions (disagreements with humans), not for selection.
                candidates=tuple(sorted(pool)),
                seed=run.pk,
            ),
            progress=lambda s, f: beat.set("score", f),
        )
        return result, pool

    def _active(self, run: TrainingRun) -> ModelVersion | None:
        return ModelVersion.objects.filter(project=run.project, is_active=True).first()

    def _write_back(self, run, version, promote: bool, metrics, scored, timings, *, scorer) -> None:
        """One transaction: queue priorities, predictions, scores, version, run status.
        `scorer` made the scores: the new version when promoted, else the active one."""
        project = run.project
        started = time.perf_counter()
        with self._owned(run) as current:
            active = self._active(run)
            if scored is not None and (promote or scorer == active):
                # (Not promoted and the active model changed meanwhile - an admin rolled back:
                # that activation's own run re-scores the queue.)
                result, pool = scored
                copy_scores(project, scorer, result, pool)
            if settings.LABELLOOP_TEST_PAUSE_AT == "write-back":
                _pause_for_a_fault_test(run.pk)
            if promote:
                ModelVersion.objects.filter(project=project, is_active=True).exclude(
                    pk=version.pk
                ).update(is_active=False)
                ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
            metrics = {**metrics, "promoted": promote, "version": version.number}
            _succeed(run, current, metrics, timings, started)
            # Activation runs re-score a version that version_activate already announced.
            if promote and run.trigger != RunTrigger.ACTIVATION:
                webhook_emit_version_activated(version=version)

    def _new_images(self, run, beat: Heartbeat, stage: Callable, timings) -> None:
        """Score the images the active model has not seen; slot them into the queue."""
        version = self._active(run)
        if version is None:
            raise RuntimeError("no active model to score the new images with")
        progress = lambda s, f: beat.set("score", f)  # noqa: E731
        result = stage("score", lambda: score_newcomers(run, version, progress))

        def write_back() -> None:
            started = time.perf_counter()
            with self._owned(run) as current:
                # Rolled back meanwhile: that activation's run re-scores every image.
                same = self._active(run) == version
                metrics = write_newcomers(run, version, result if same else None)
                _succeed(run, current, metrics, timings, started)

        stage("write-back", write_back)
        logger.info("run %d: new images scored (%s)", run.pk, _brief(timings))

    def _write_back_cold_start(self, run, ordered, timings) -> None:
        """One transaction: the head of the coverage order first, everything else after it."""
        order, sampled = ordered
        head = [int(key) for key in order.keys[:COLD_START_HEAD]]
        started = time.perf_counter()
        with self._owned(run) as current:
            write_cold_start(run.project, head)
            metrics = {
                "ordered": len(head),
                "sampled": sampled,
                "failed_items": len(order.failed_items),
            }
            _succeed(run, current, metrics, timings, started)

    @contextmanager
    def _owned(self, run: TrainingRun) -> Iterator[TrainingRun]:
        """The write-back transaction, entered only while this worker still owns the run."""
        with transaction.atomic():
            current = TrainingRun.objects.select_for_update().get(pk=run.pk)
            if current.status != RunStatus.RUNNING or current.worker != self.name:
                raise Cancelled()  # re-queued to another worker meanwhile: let it finish
            yield current


def _vanished(run: TrainingRun) -> bool:
    """The run is gone (its project deleted mid-run, which deletes its runs): whatever failed
    failed for that reason, and there is nothing left to record it on. Logged as what it is,
    not as an error."""
    try:
        if TrainingRun.objects.filter(pk=run.pk).exists():
            return False
    except DATABASE_ERRORS:
        return False  # cannot tell: the caller's handling stands
    logger.info(
        "run %d: its project was deleted (project %d) while it ran; nothing written",
        run.pk,
        run.project_id,
    )
    return True


def _succeed(run, current, metrics: dict, timings: dict, started: float) -> None:
    """Mark the run succeeded, inside the write-back transaction; run.succeeded goes out with it."""
    TrainingRun.objects.filter(pk=run.pk).update(
        status=RunStatus.SUCCEEDED,
        stage="done",
        progress=1.0,
        finished_at=timezone.now(),
        metrics=json_safe(metrics),
        stage_seconds={
            **current.stage_seconds,
            **timings,
            "write-back": round(time.perf_counter() - started, 3),
        },
    )
    webhook_emit_run(run_id=run.pk)


def _pause_for_a_fault_test(run_id: int) -> None:
    """Hold the write-back transaction open (queue already UPDATEd, nothing committed) until
    the process is killed: a test SIGKILLs the worker here, deterministically. Only with
    LABELLOOP_TEST_PAUSE_AT=write-back, which no deployment sets."""
    logger.warning("run %d: paused inside write-back (LABELLOOP_TEST_PAUSE_AT)", run_id)
    while True:
        time.sleep(1)


def _brief(timings: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())


def _error_text(exc: BaseException) -> str:
    """What a failed run records: the error, then the traceback (call inside ``except``)."""
    return f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}"


def _database_answers() -> bool:
    """After a database error: is the connection still good (the statement failed) or gone
    (the server restarted, the network dropped)? Never reconnects to find out."""
    if connection.connection is None:
        return False
    try:
        return connection.is_usable()
    except Exception:  # any failure to ask means it does not answer
        return False
