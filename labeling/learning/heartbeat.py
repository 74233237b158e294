"""A running run's liveness: a thread that records its heartbeat, stage and progress, and
notices when the run was cancelled or taken over (see labeling/learning/worker.py)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from labeling.learning.runs import run_heartbeat

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)


class Heartbeat:
    """Keeps a run's heartbeat and progress fresh from a thread (with its own connection)."""

    def __init__(self, run_id: int, worker: str, spans: dict[str, tuple[float, float]]) -> None:
        """``spans``: the share of the run's progress bar each of its stages accounts for
        (``stage -> (from, to)``, the job's ``spans``)."""
        self.run_id, self.worker, self.spans = run_id, worker, spans
        self.stage, self.progress = "claimed", 0.0
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def set(self, stage: str, fraction: float = 0.0) -> None:
        low, high = self.spans.get(stage, (self.progress, self.progress))
        self.stage, self.progress = stage, low + (high - low) * min(max(fraction, 0.0), 1.0)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    alive = run_heartbeat(
                        run_id=self.run_id,
                        worker=self.worker,
                        stage=self.stage,
                        progress=self.progress,
                    )
                except DATABASE_ERRORS:  # beat again once the database is back
                    logger.warning("run %d: heartbeat missed, database unavailable", self.run_id)
                    connection.close()
                    alive = True
                if not alive:
                    self.cancelled.set()
                self._stop.wait(settings.LABELLOOP_WORKER_HEARTBEAT_SECONDS)
        finally:
            connection.close()
