"""A label check (``label_check`` runs): which consensus labels are most likely wrong, put into
the review queue (``labeling.annotations.reviews``).

    .venv/bin/python -m pytest tests/labeling/learning/test_label_check.py -q

Every consensus label, the held-out random slice included (a wrong label there skews the
evaluation), gets an out-of-sample probability by 5-fold cross-fitting and cleanlab ranks
them (``training.suspects``): on the newest backbone's stored features when the project has
one (a head per fold: seconds), else the seed CNN per fold on Ray (bounded steps). The labels
cleanlab flags go to the queue with their score; a label a reviewer already decided, or one
changed since the check read it, is left alone by ``reviews_open``. Gold images are never
suspects: their label is the known answer.

Queued after a round succeeds (``labeling.learning.services.run_maybe_label_check``) or by an
admin; it runs in the main lane, where any other run takes a queued check's place.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

import training.label_check
from labeling.annotations.reviews import Suspect, reviews_open
from labeling.images.models import Image
from labeling.learning.backbones import backbone_newest
from labeling.learning.jobs.base import Job, RunError
from labeling.learning.jobs.head import features_for
from labeling.learning.models import RunTrigger
from labeling.learning.snapshot import take_snapshot, train_config
from labeling.learning.writeback import cache_dir
from training.label_check import LabelCheckSpec
from training.suspects import CheckConfig, CheckResult, check_features


@dataclass
class Checked:
    result: CheckResult
    keys: list[str]  # image ids, aligned with the check's positions
    classes: list[str]


class LabelCheckJob(Job):
    trigger = RunTrigger.LABEL_CHECK
    spans = {
        "snapshot": (0.0, 0.05),
        "embed": (0.05, 0.15),
        "crossfit": (0.15, 0.95),
        "write-back": (0.95, 1.0),
    }
    done = "labels checked"

    def compute(self) -> Checked:
        run, project = self.run, self.project
        snap = self.stage("snapshot", lambda: take_snapshot(run))
        items = [*snap.items, *snap.val_items]
        labels = np.array([*snap.labels, *snap.val_labels], dtype=np.int64)
        if not items:
            raise RunError("no consensus labels yet: label some images first")
        # Seeded by the run, as rounds are: a rerun of one run folds the labels alike.
        config = CheckConfig(seed=run.pk, train=train_config())
        progress = lambda s, f: self.progress("crossfit", f if s == "crossfit" else 0.0)  # noqa: E731
        stop = self.context.interrupted
        backbone = backbone_newest(project)
        if backbone is not None:
            x = self.stage("embed", lambda: features_for(self, backbone, items))
            result = self.stage(
                "crossfit",
                lambda: check_features(
                    x, labels, len(snap.classes), config=config, progress=progress,
                    should_stop=stop,
                ),
            )  # fmt: skip
        else:
            spec = LabelCheckSpec(
                classes=tuple(snap.classes),
                items=tuple(items),
                labels=tuple(int(y) for y in labels),
                input_size=project.input_size,
                input_channels=project.input_channels,
                cache_dir=str(cache_dir()),
                config=config,
            )
            # Through the module, so a test can stand in for the engine.
            check = training.label_check.run_label_check
            result = self.stage(
                "crossfit", lambda: check(spec, progress=progress, should_stop=stop)
            )
        if result.stopped:
            # Cancelled (or the worker is stopping) between folds: the stage boundary raises
            # which; nothing is written.
            self.stage("rank", lambda: None)
            raise RunError("the label check stopped before it finished")
        return Checked(result, [item.key for item in items], list(snap.classes))

    def write_back(self, checked: Checked) -> dict:
        result, keys, classes = checked.result, checked.keys, checked.classes
        flagged = [replace(s, index=int(keys[s.index])) for s in result.suspects]
        gold = set(
            Image.objects.filter(
                pk__in=[s.index for s in flagged], gold_label__isnull=False
            ).values_list("pk", flat=True)
        )
        suspects = [
            Suspect(
                image_id=s.index,
                score=s.score,
                given_label=classes[s.given],
                model_label=classes[s.predicted],
                model_confidence=s.probability,
            )
            for s in flagged
            if s.index not in gold
        ]
        opened = reviews_open(project=self.project, run_id=self.run.pk, suspects=suspects)
        return {
            "checked": int(result.checked.sum()),
            "flagged": len(suspects),
            "opened": opened,
            "method": result.method,
            "folds": result.folds,
            "seconds": round(result.seconds, 3),
            "labels": len(keys),
            "failed_items": len(result.failed_items),
        }
