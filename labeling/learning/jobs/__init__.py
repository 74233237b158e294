"""One job class per run kind (``TrainingRun.trigger``); see ``base.Job`` for what a job is.
Only the worker imports this package (and with it torch and Ray): the web side never does
(``make lint`` checks it)."""

from __future__ import annotations

from labeling.learning.jobs.activation import ActivationJob
from labeling.learning.jobs.backbone import ImportBackboneJob, PretrainJob
from labeling.learning.jobs.base import Job, JobContext, RunError
from labeling.learning.jobs.cold_start import ColdStartJob
from labeling.learning.jobs.fine_tune import FineTuneJob
from labeling.learning.jobs.label_check import LabelCheckJob
from labeling.learning.jobs.new_images import NewImagesJob
from labeling.learning.jobs.train import TrainJob
from labeling.learning.models import RunTrigger, TrainingRun

JOBS: dict[str, type[Job]] = {
    RunTrigger.MANUAL: TrainJob,
    RunTrigger.AUTOMATIC: TrainJob,
    RunTrigger.ACTIVATION: ActivationJob,
    RunTrigger.COLD_START: ColdStartJob,
    RunTrigger.NEW_IMAGES: NewImagesJob,
    RunTrigger.PRETRAIN: PretrainJob,
    RunTrigger.BACKBONE_IMPORT: ImportBackboneJob,
    RunTrigger.LABEL_CHECK: LabelCheckJob,
    RunTrigger.FINE_TUNE: FineTuneJob,
}


def job_class(run: TrainingRun) -> type[Job]:
    """The job class that carries out ``run``."""
    return JOBS[run.trigger]


__all__ = ["JOBS", "Job", "JobContext", "RunError", "job_class"]
