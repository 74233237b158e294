"""What every run kind is: a job class with two sides.

- ``compute()`` runs outside any transaction: it reads what it needs from the database and
  hands plain dataclasses to ``training/`` (Ray); each step is a named stage
  (``self.stage(name, fn)``), so progress, cancellation and a shutting-down worker act at
  stage boundaries.
- ``write_back(result)`` runs inside the run's write-back transaction
  (``labeling.learning.runs.run_owned``), which the worker commits together with the run's
  success: annotators never see a half-updated queue, and a worker killed before the commit
  leaves nothing behind. It returns the run's metrics.

The worker (``labeling.learning.worker``) claims a run, builds its job
(``labeling.learning.jobs.job_class``), and runs the two sides; the job never writes a run's
status itself (``labeling.learning.runs`` does).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from django.conf import settings

from labeling.learning.models import ModelVersion, TrainingRun

Stage = Callable[[str, Callable[[], Any]], Any]  # stage(name, fn) -> fn()


def run_workdir(run: TrainingRun) -> Path:
    """The worker's scratch folder for one run (checkpoints, a pretraining's resumable state),
    the same for every attempt at it. Named by its id and creation time: a database restored
    from a backup hands out run ids again, and a new run must never resume an older one's
    state left in the data dir."""
    path = Path(settings.DATA_DIR) / "worker" / run_workdir_name(run)
    path.mkdir(parents=True, exist_ok=True)
    return path


def run_workdir_name(run: TrainingRun) -> str:
    return f"run-{run.pk}-{run.created_at.strftime('%Y%m%d%H%M%S%f')}"


Progress = Callable[[str, float], None]  # (stage, fraction of that stage) -> None

# Share of the run's progress bar each stage accounts for: the stages of a run that trains,
# evaluates and scores. A job whose stages differ says so in its own ``spans``.
TRAINING_SPANS = {
    "snapshot": (0.0, 0.05),
    "train": (0.05, 0.65),
    "evaluate": (0.65, 0.71),
    "shortcut": (0.71, 0.73),  # the shortcut check (jobs/shortcut.py)
    "register": (0.73, 0.75),
    "score": (0.75, 0.95),
    "write-back": (0.95, 1.0),
}


class RunError(Exception):
    """A failure the run's error states in words a user can act on (weights that do not fit,
    an unreachable URL): recorded without a traceback."""


@dataclass
class JobContext:
    """What the worker gives a job: its stage runner and a progress callback for the stage
    in progress (``progress(stage, fraction)``), its own name, and ``interrupted()``: true
    once the run is cancelled or the worker is stopping, for stages long enough to check it
    as they go (pretraining) rather than only at their end."""

    stage: Stage
    progress: Progress
    worker: str
    interrupted: Callable[[], bool] = lambda: False


class Job(ABC):
    trigger: ClassVar[str]
    spans: ClassVar[dict[str, tuple[float, float]]] = TRAINING_SPANS
    # How the worker's log line says the run ended well ("run 7: queue ordered for coverage").
    done: ClassVar[str] = "succeeded"

    def __init__(self, run: TrainingRun, context: JobContext) -> None:
        self.run, self.project = run, run.project
        self.stage, self.progress = context.stage, context.progress
        self.context = context

    @abstractmethod
    def compute(self) -> Any:
        """The run's work, stage by stage, outside any transaction; returns its result."""

    @abstractmethod
    def write_back(self, result: Any) -> dict:
        """Inside the write-back transaction: store ``result``; return the run's metrics."""

    def active_version(self) -> ModelVersion | None:
        """The project's active model now (it may change while a job computes)."""
        return ModelVersion.objects.filter(project=self.project, is_active=True).first()
