"""A running run's liveness: a thread that records its heartbeat, stage and progress, and
notices when the run was cancelled or taken over (see labeling/learning/worker.py)."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

from labeling.learning import services

logger = logging.getLogger(__name__)

DATABASE_ERRORS = (OperationalError, InterfaceError)
# Share of the run's progress bar each stage accounts for.
STAGE_SPAN = {
    "order": (0.0, 0.95),  # cold-start runs: order the queue for coverage, then write-back
    "snapshot": (0.0, 0.05),
    "train": (0.05, 0.65),
    "evaluate": (0.65, 0.72),
    "register": (0.72, 0.75),
    "score": (0.75, 0.95),
    "write-back": (0.95, 1.0),
}


class Heartbeat:
    """Keeps a run's heartbeat and progress fresh from a thread (with its own connection)."""

    def __init__(self, run_id: int, worker: str) -> None:
        self.run_id, self.worker = run_id, worker
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
        low, high = STAGE_SPAN.get(stage, (self.progress, self.progress))
        self.stage, self.progress = stage, low + (high - low) * min(max(fraction, 0.0), 1.0)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    alive = services.run_heartbeat(
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
