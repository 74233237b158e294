"""The worker: the only bridge between the database and Ray.

    python manage.py worker            # runs until Ctrl-C / SIGTERM
    python manage.py worker --once     # handles what is queued now, then exits

It claims queued runs (``labeling.learning.runs``: ``SELECT ... FOR UPDATE SKIP LOCKED``),
heartbeats from a thread while it works, and carries each run out with the job class of its
kind (``labeling.learning.jobs``): the job's ``compute()`` hands plain dataclasses to
``training/`` (local Ray, or RAY_ADDRESS) stage by stage, and its ``write_back()`` stores the
result in the transaction that also marks the run succeeded, so annotators never see a
half-updated queue. Beside the runs it hosts the predict server, the model exporter
(``export_server``) and the background services apps register (``labeling.core.background``:
webhook deliveries). A run can be resumed by another worker: a model version already
registered for it is reused, never trained twice.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Callable, Sequence

from django.db import close_old_connections, connection

from labeling.core.background import BackgroundService, background_services
from labeling.learning import runs
from labeling.learning.embedding_map import embedding_map_build
from labeling.learning.export_server import Exporter
from labeling.learning.heartbeat import DATABASE_ERRORS, Heartbeat
from labeling.learning.jobs import Job, JobContext, RunError, job_class
from labeling.learning.models import RunLane, TrainingRun
from labeling.learning.predict_server import Predictor
from labeling.learning.similar import similar_index_refresh
from labeling.learning.writeback import json_safe
from training.cluster import ensure_ray

logger = logging.getLogger(__name__)

# Seconds a stopping worker waits for its predictor and webhook threads to wind down.
HELPER_JOIN_SECONDS = 15
# Seconds between attempts to reach a database that went away (restart, failover).
DATABASE_RETRY_SECONDS = 2.0


class Cancelled(Exception):
    """The run was cancelled (or taken over): stop at the stage boundary."""


class Worker:
    def __init__(
        self, *, poll_seconds: float = 2.0, lanes: Sequence[str] = tuple(RunLane.values)
    ) -> None:
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.poll_seconds = poll_seconds
        unknown = set(lanes) - set(RunLane.values)
        if unknown or not lanes:
            raise ValueError(f"lanes must be some of {RunLane.values}, got {list(lanes)}")
        self.lanes = list(lanes)
        self.stopping = threading.Event()
        self.announced = False  # "ready" is logged once, not on every run_forever(once=True)

    def connect_ray(self) -> None:
        """Start a local Ray, or join RAY_ADDRESS's cluster (``training.cluster.ensure_ray``)."""
        ensure_ray()

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
            logger.info("worker %s serves the lanes: %s", self.name, ", ".join(self.lanes))
            self.announced = True
        helpers: list[BackgroundService] = []
        if predict and not once:
            # Predictions and model exports: asked by the web side, answered here.
            helpers += [Predictor(self.stopping), Exporter(self.stopping)]
        if not once:
            helpers += [factory(self.stopping) for factory in background_services().values()]
        # The main lane in this thread, the others beside it: a pretraining that takes an
        # hour runs while rounds keep the queue fresh. --once serves them one after another.
        lanes = [] if once else [
            threading.Thread(target=self._serve_thread, args=(lane,), daemon=True,
                             name=f"lane-{lane}") for lane in self.lanes[1:]
        ]  # fmt: skip
        for helper in [*helpers, *lanes]:
            helper.start()
        try:
            if once:  # until a pass over every lane finds nothing: runs queue runs
                while any([self._serve(lane, once=True) for lane in self.lanes]):
                    pass
            else:
                self._serve(self.lanes[0], once=False)
        finally:
            # Let the threads finish what they are sending and close their connections, so
            # that a stopping worker does not die with a query in flight.
            if helpers or lanes:
                self.stopping.set()
            for helper in [*helpers, *lanes]:
                helper.join(timeout=HELPER_JOIN_SECONDS)

    def _serve_thread(self, lane: str) -> None:
        try:
            self._serve(lane, once=False)
        except SystemExit:
            pass  # a shutdown at a stage boundary: the run is left for the next worker
        finally:
            connection.close()

    def _serve(self, lane: str, *, once: bool) -> bool:
        """Claim and execute the runs of one lane until stopped (or, once, until none is
        queued). Returns whether it executed any."""
        executed = False
        while not self.stopping.is_set():
            try:
                close_old_connections()
                runs.run_requeue_stale(alive=self.name)
                run = runs.run_claim(worker=self.name, lane=lane)
                if run is not None:
                    self.execute(run)
                    executed = True
                    continue
            except DATABASE_ERRORS as exc:
                if once:
                    raise
                # A restart or failover: wait for the database instead of exiting. A run
                # it interrupted keeps its stale heartbeat and is re-queued once it is back.
                logger.warning(
                    "worker %s: database unavailable (%s); retrying in %g s",
                    self.name,
                    _first_line(exc),
                    DATABASE_RETRY_SECONDS,
                )
                connection.close()
                self.stopping.wait(DATABASE_RETRY_SECONDS)
                continue
            if once:
                return executed
            self.stopping.wait(self.poll_seconds)
        return executed

    # --- one run -------------------------------------------------------------------------

    def execute(self, run: TrainingRun) -> None:
        logger.info(
            "run %d (%s, %s): claimed by %s", run.pk, run.project.slug, run.trigger, self.name
        )
        timings: dict[str, float] = {}
        kind = job_class(run)
        with Heartbeat(run.pk, self.name, kind.spans) as beat:
            context = JobContext(
                stage=self._stage_runner(beat, timings),
                progress=beat.set,
                worker=self.name,
                interrupted=lambda: beat.cancelled.is_set() or self.stopping.is_set(),
            )
            job = kind(run, context)
            try:
                result = job.compute()
                context.stage("write-back", lambda: self._write_back(job, result, timings))
                logger.info("run %d: %s (%s)", run.pk, job.done, _brief(timings))
                _refresh_similar(run)
            except (Cancelled, runs.RunLost):
                if _vanished(run):
                    return
                runs.run_fail(run_id=run.pk, worker=self.name, error="", cancelled=True)
                logger.info("run %d: cancelled", run.pk)
            except DATABASE_ERRORS as exc:
                if _database_answers():  # the statement failed (disk full, a timeout, ...)
                    if _vanished(run):
                        return
                    logger.exception("run %d failed", run.pk)
                    runs.run_fail(run_id=run.pk, worker=self.name, error=_error_text(exc))
                    return
                # The database went away mid-run (a restart, a failover): not the run's fault.
                # Leave it running; its heartbeat goes stale and it is re-queued once the
                # database is back (at most runs.MAX_ATTEMPTS times in all).
                logger.exception("run %d: database lost; the run will be retried", run.pk)
                raise
            except RunError as exc:  # said in words: no traceback to read
                if _vanished(run):
                    return
                logger.warning("run %d failed: %s", run.pk, exc)
                runs.run_fail(run_id=run.pk, worker=self.name, error=str(exc))
            except Exception as exc:  # a failed run must be recorded, whatever failed
                if _vanished(run):
                    return
                logger.exception("run %d failed", run.pk)
                runs.run_fail(run_id=run.pk, worker=self.name, error=_error_text(exc))

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

    def _write_back(self, job: Job, result, timings: dict[str, float]) -> None:
        """One transaction, entered only while this worker still owns the run: the job's
        writes, then the run's success (and its run.succeeded event)."""
        started = time.perf_counter()
        with runs.run_owned(run=job.run, worker=self.name) as current:
            metrics = job.write_back(result)
            runs.run_succeed(
                run=job.run,
                current=current,
                metrics=json_safe(metrics),
                timings=timings,
                started=started,
            )


def _refresh_similar(run: TrainingRun) -> None:
    """After a run's commit: the project's similarity index and embedding map follow its
    embeddings (a new backbone or model rebuilds them, new vectors are added). The run has
    succeeded whatever happens here; a failed refresh is retried after the project's next
    run."""
    for what, refresh in (
        ("similarity index", similar_index_refresh),
        ("map", embedding_map_build),
    ):
        try:
            refresh(project=run.project)
        except Exception:  # logged with its traceback; the old one stays
            logger.exception("run %d: the embedding %s could not be refreshed", run.pk, what)


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


def _brief(timings: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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
