"""A fine-tune (``fine_tune`` runs): after a round has fitted a head on the backbone's frozen
features - seconds, so the queue improves at once - every layer of that model is trained on
the labels for ``LABELLOOP_FINE_TUNE_STEPS`` steps at ``LABELLOOP_FINE_TUNE_LR``, on Ray like
a round from scratch. It learns from a sample of the unlabeled pool too (FixMatch), whether or
not the project's rounds do (``LABELLOOP_FINE_TUNE_SEMI_SUPERVISED``, on by default: it
runs after its round re-ordered the queue; a round asked for while it runs waits for it, one
run at a time in the main lane). It is then evaluated, registered and, unless significantly
worse than the active model, promoted like any round, and scores the pool on pixels: its
trunk is no longer the backbone the stored embeddings came from.

Queued by ``services.run_maybe_fine_tune`` when a round on a backbone ends; it gives way to
any other run while queued. A fine-tune whose starting model is gone, or whose backbone or
classes changed since, ends at once with ``metrics["skipped"]`` saying why: the next round
fits a head on what is there now.

    .venv/bin/python -m pytest tests/labeling/learning/test_fine_tune.py -q
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from django.conf import settings

from labeling.learning.backbones import backbone_newest
from labeling.learning.jobs.train import TrainJob
from labeling.learning.models import ModelVersion, RunTrigger
from labeling.learning.snapshot import Snapshot, unlabeled_sample
from labeling.learning.writeback import local_checkpoint, renames_seen
from labeling.projects.labels import follow_renames
from training.contracts import FINE_TUNED, TrainSpec
from training.models import load_checkpoint


class _Stale(Exception):
    """The fine-tune has nothing left to start from; the message says why."""


@dataclass
class Skipped:
    reason: str


class FineTuneJob(TrainJob):
    trigger = RunTrigger.FINE_TUNE
    done = "fine-tuned"

    def compute(self):
        try:
            return super().compute()
        except _Stale as stale:
            return Skipped(str(stale))

    def write_back(self, result) -> dict:
        if isinstance(result, Skipped):
            return {"skipped": result.reason}
        return super().write_back(result)

    def _fit(self, spec: TrainSpec, snap: Snapshot):
        base = self._base(snap)
        config = replace(
            spec.config,
            max_steps=settings.LABELLOOP_FINE_TUNE_STEPS,
            lr=settings.LABELLOOP_FINE_TUNE_LR,
            # One model, measured on the split it leaves out: twice the steps of a ResNet
            # would double the run for the few labels the split holds back.
            refit=False,
        )
        unlabeled = spec.unlabeled_items
        if not unlabeled and settings.LABELLOOP_FINE_TUNE_SEMI_SUPERVISED:
            # It runs after the head fit has re-ordered the queue, so learning from the pool
            # too does not delay that: 95% on MNIST with 42 labels instead of 142
            # (docs/benchmarks.md, "Fine-tunes that learn from the pool").
            size = settings.LABELLOOP_SEMI_SUPERVISED_POOL
            unlabeled = tuple(unlabeled_sample(self.project, size=size, seed=self.run.pk))
        spec = replace(
            spec,
            arch=f"backbone:{base.backbone.arch}",
            init_checkpoint=local_checkpoint(base.checkpoint_key),
            config=config,
            unlabeled_items=unlabeled,
        )
        result = self._train_on_ray(spec)
        metrics = result.metrics | {"trained": FINE_TUNED, "base_version": base.number}
        return spec, base.backbone, replace(result, metrics=metrics)

    def _base(self, snap: Snapshot) -> ModelVersion:
        """The model the round fitted, if it is still one to start from."""
        pk = self.run.params.get("base_version")
        base = (
            ModelVersion.objects.filter(pk=pk, project=self.project)
            .select_related("backbone")
            .first()
        )
        if base is None:
            raise _Stale(f"version {pk} to start from is gone")
        if base.backbone is None or base.backbone != backbone_newest(self.project):
            raise _Stale(f"a newer backbone came after version {base.number}")
        meta = load_checkpoint(local_checkpoint(base.checkpoint_key))[1]
        known = follow_renames(list(meta["classes"]), snap.renames[renames_seen(base) :])
        if known != list(snap.classes):
            raise _Stale(f"the project's classes changed since version {base.number}")
        return base
