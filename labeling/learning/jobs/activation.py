"""Re-score the queue with one model version: activated by an admin (a rollback), or the
active one after the project's strategy changed."""

from __future__ import annotations

from labeling.learning import runs
from labeling.learning.jobs.base import Job
from labeling.learning.jobs.scoring import picker_used, score_pool, write_pool_scores
from labeling.learning.models import RunTrigger


class ActivationJob(Job):
    trigger = RunTrigger.ACTIVATION

    def compute(self):
        # No source version: re-score with whichever model is active now (a strategy change;
        # a training run may have promoted one meanwhile).
        version = self.run.source_version or self.active_version()
        if version is None:
            raise RuntimeError("no active model to re-score the queue with")
        if self.run.source_version_id is None:
            runs.run_record_source_version(run=self.run, version=version)
        return version, self.stage("score", lambda: score_pool(self, version))

    def write_back(self, result) -> dict:
        version, scored = result
        write_pool_scores(self, version, scored, promote=True)
        # Announced already: by the admin's activation, or it was the active model.
        runs.version_promote(version=version, announce=False)
        return {
            "activated_version": version.number,
            "promoted": True,
            "version": version.number,
            "picker": picker_used(scored),
        }
