"""A training round (``manual`` and ``automatic`` runs): snapshot the consensus labels, train
on Ray, evaluate against the active model, register the version, score the pool with the model
that will order the queue, and write it all back in one transaction.

A run resumed after its worker died finds its registered version and goes straight to
scoring: a model is never trained twice for one run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from django.conf import settings

import training.train
from labeling.annotations.consensus import consensus_refit
from labeling.learning import runs
from labeling.learning.backbones import backbone_newest
from labeling.learning.jobs.base import Job, run_workdir
from labeling.learning.jobs.head import backbone_probe_record, train_head
from labeling.learning.jobs.scoring import picker_used, score_pool, write_pool_scores
from labeling.learning.jobs.shortcut import shortcut_check_round
from labeling.learning.models import ModelVersion, RunTrigger
from labeling.learning.snapshot import Snapshot, take_snapshot, train_config
from labeling.learning.writeback import (
    cache_dir,
    checkpoint_store,
    json_safe,
    local_checkpoint,
    renames_seen,
)
from labeling.projects.labels import follow_renames
from training.contracts import ScoreSpec, TrainSpec
from training.metrics import promotion_verdict
from training.score import run_scoring

logger = logging.getLogger(__name__)


@dataclass
class Trained:
    version: ModelVersion
    promote: bool  # the new model orders the queue from now on
    metrics: dict
    scorer: ModelVersion  # the model whose scores order the queue
    scored: object  # score_pool's result


class TrainJob(Job):
    trigger = RunTrigger.MANUAL  # and RunTrigger.AUTOMATIC: the same job

    def compute(self) -> Trained:
        run = self.run
        existing = ModelVersion.objects.filter(run=run).first()
        if existing is not None:
            # A previous worker trained and registered this run's model before it died.
            logger.info("run %d: resuming with its registered version %d", run.pk, existing.number)
            version, metrics = existing, existing.metrics
            promote = metrics.get("promote", True)
        else:
            version, promote, metrics = self._train()
        # A model kept out still leaves a queue to re-prioritise: the labels since the last
        # scoring took its head, so the active model orders what is left.
        scorer = version if promote else self.active_version() or version
        scored = self.stage("score", lambda: score_pool(self, scorer))
        return Trained(version, promote, metrics, scorer, scored)

    def write_back(self, result: Trained) -> dict:
        write_pool_scores(self, result.scorer, result.scored, promote=result.promote)
        backbone_probe_record(version=result.version, metrics=result.metrics)
        if result.promote:
            runs.version_promote(version=result.version)  # model.activated goes out with it
        return {
            **result.metrics,
            "promoted": result.promote,
            "version": result.version.number,
            "picker": picker_used(result.scored),  # typical (TypiClust) or the strategy's
        }

    def _snapshot(self, run) -> Snapshot:
        """The labels to train on. Where several annotators label each image, the model of
        their reliability is refitted first, so the round learns from the re-judged labels."""
        if self.project.annotations_per_image > 1:
            report = consensus_refit(project=self.project)
            logger.info("run %d: consensus refitted: %s", run.pk, report)
        return take_snapshot(run)

    def _train(self) -> tuple[ModelVersion, bool, dict]:
        run, project = self.run, self.project
        snap = self.stage("snapshot", lambda: self._snapshot(run))
        if not snap.items:
            raise RuntimeError("no consensus labels yet: label some images first")
        workdir = run_workdir(run)
        spec = TrainSpec(
            classes=tuple(snap.classes),
            input_size=project.input_size,
            input_channels=project.input_channels,
            items=tuple(snap.items),
            labels=tuple(snap.labels),
            val_items=tuple(snap.val_items),
            val_labels=tuple(snap.val_labels),
            unlabeled_items=tuple(snap.unlabeled_items),  # FixMatch when the project asks
            cache_dir=str(cache_dir()),
            checkpoint_path=str(workdir / "model.pt"),
            config=train_config(),
            seed=run.pk,
        )
        spec, backbone, result = self._fit(spec, snap)
        metrics = dict(result.metrics) | {
            "val_source": snap.val_source,
            "labels": snap.total,
            "failed_items": len(result.failed_items),
            "backbone": backbone.number if backbone is not None else None,
            "semi_supervised": bool(spec.unlabeled_items),
            "unlabeled_images": len(spec.unlabeled_items),
        }
        verdict = self.stage(
            "evaluate", lambda: self._promotion_verdict(spec, snap, result.checkpoint_path)
        )
        promote = verdict is None or verdict["promote"]
        metrics["active_accuracy_on_this_val"] = verdict and verdict["active_accuracy"]
        if verdict is not None:
            metrics["promotion"] = verdict
        metrics["promote"] = promote
        metrics["shortcut_check"] = self.stage(
            "shortcut", lambda: shortcut_check_round(spec, snap, result.checkpoint_path)
        )
        version = self.stage(
            "register",
            lambda: self._register(spec, result.checkpoint_path, metrics, snap, backbone),
        )
        return version, promote, metrics

    def _fit(self, spec: TrainSpec, snap: Snapshot):
        """(the spec trained, the backbone it used or None, TrainResult): a head on the newest
        backbone's frozen features, or a CNN from scratch when the project has none."""
        backbone = backbone_newest(self.project)
        if backbone is not None:
            # Frozen features and a head: seconds, and the pool's structure in every feature.
            spec = replace(spec, arch=f"backbone:{backbone.arch}", unlabeled_items=())
            return spec, backbone, train_head(self, backbone, snap, spec)
        return spec, None, self._train_on_ray(spec)

    def _train_on_ray(self, spec: TrainSpec):
        progress = lambda s, f: self.progress("train", f)  # noqa: E731
        # Through the module, so a test can stand in for the engine (training.train).
        train = training.train.run_training
        return self.stage("train", lambda: train(spec, progress=progress))

    def _promotion_verdict(self, spec: TrainSpec, snap: Snapshot, checkpoint: str) -> dict | None:
        """Not significantly worse than the active model on this run's validation labels
        (`training.metrics.promotion_verdict`; configurable). None: no comparison to make,
        the new model is promoted."""
        active = self.active_version()
        if active is None or not settings.LABELLOOP_PROMOTE_ONLY_IF_NOT_WORSE:
            return None
        if not snap.val_items or active.metrics.get("val_source") != "random_slice":
            # Nothing held out, or the active model trained on these very labels (it was
            # evaluated on a split): no fair comparison exists, so the newer model wins.
            return None
        old = _predicted(spec, snap, local_checkpoint(active.checkpoint_key), renames_seen(active))
        new = _predicted(spec, snap, checkpoint, len(snap.renames))
        truth = dict(zip([r.key for r in snap.val_items], snap.val_labels, strict=True))
        keys = [k for k in truth if k in old and k in new]  # both decoded it
        return promotion_verdict(
            np.array([truth[k] for k in keys]),
            np.array([old[k] for k in keys]),
            np.array([new[k] for k in keys]),
            tolerance=settings.LABELLOOP_PROMOTE_TOLERANCE,
            alpha=settings.LABELLOOP_PROMOTE_ALPHA,
        )

    def _register(
        self, spec: TrainSpec, checkpoint: str, metrics: dict, snap: Snapshot, backbone=None
    ):
        saved = checkpoint_store(project=self.project, run=self.run, path=checkpoint)
        return runs.version_register(
            run=self.run,
            checkpoint_key=saved,
            architecture=spec.arch,
            config={
                "arch": spec.arch,
                "input_size": spec.input_size,
                "renames_seen": len(snap.renames),
            },
            metrics=json_safe(metrics),
            labels_used=snap.total,
            backbone=backbone,
        )


def _predicted(spec: TrainSpec, snap: Snapshot, path: str, since: int) -> dict[str, int]:
    """Key -> a model's predicted class as an index into this run's classes (-1: a class the
    run does not have). The model may know the classes in another order, or by names renamed
    since it was trained (``since``: the renames it had seen)."""
    index = {name: i for i, name in enumerate(spec.classes)}
    scored = run_scoring(
        ScoreSpec(
            checkpoint_path=path,
            items=tuple(snap.val_items),
            cache_dir=spec.cache_dir,
            strategy="least_confidence",
        )
    )
    # The model's class names as they were called at this run's snapshot.
    classes = follow_renames(list(scored.classes), snap.renames[since:])
    names = [classes[int(p)] for p in scored.predicted]
    return {key: index.get(name, -1) for key, name in zip(scored.keys, names, strict=True)}
