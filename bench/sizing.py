"""Database bytes per image, measured: the sizing table of docs/operations.md.

    LABELLOOP_DATA_DIR=var/bench-sizing .venv/bin/python -m bench.sizing [--images 100000]

Loads one project of N images with COPY (as bench.queue does), one annotation and one lease
log row per image (a fully labeled project, each image labeled once), and one model score
per image (ten classes), then prints each table's heap and index bytes per row from
PostgreSQL itself (pg_relation_size, pg_indexes_size after VACUUM ANALYZE), and the totals
extrapolated to 1M and 10M images. Uses the embedded PostgreSQL (or DATABASE_URL); drops the
project at the end unless --keep. Figures are the growth of each table over a compacted
baseline (VACUUM FULL), so other projects in the database do not count.
"""

from __future__ import annotations

import argparse
import io
import random
import time
import uuid

from django.contrib.auth import get_user_model
from django.db import connection

from bench.queue import load  # sets up Django and migrates, before any model import
from labeling.learning.models import ModelVersion, RunStatus, TrainingRun
from labeling.projects.models import Project
from labeling.projects.services import project_delete

TABLES = (
    "images_image",
    "annotations_annotation",
    "annotations_leaselog",
    "learning_imagescore",
)
CLASSES = 10


def copy_rows(table: str, columns: str, rows) -> None:
    with (
        connection.cursor() as cursor,
        cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
    ):
        chunk = io.StringIO()
        for n, row in enumerate(rows):
            chunk.write(row)
            if n % 50_000 == 49_999:
                copy.write(chunk.getvalue())
                chunk = io.StringIO()
        copy.write(chunk.getvalue())


def fill(project, n: int) -> None:
    user, _ = get_user_model().objects.get_or_create(username="sizing-annotator")
    ids = list(project.images.order_by("id").values_list("id", flat=True))
    rng = random.Random(0)
    copy_rows(
        "annotations_annotation",
        "image_id, annotator_id, label, client_id, duration_ms, source, created_at",
        (
            f"{i}\t{user.id}\t{rng.randrange(CLASSES)}\t{uuid.uuid4()}\t{rng.randrange(500, 5000)}"
            "\tmanual\tnow\n"
            for i in ids
        ),
    )
    copy_rows(
        "annotations_leaselog",
        "image_id, user_id, leased_at, expires_at, ended_at, exploration",
        (f"{i}\t{user.id}\tnow\tnow\tnow\tf\n" for i in ids),
    )
    run = TrainingRun.objects.create(project=project, status=RunStatus.SUCCEEDED)
    version = ModelVersion.objects.create(
        project=project,
        run=run,
        number=1,
        checkpoint_key="x",
        architecture="seed_cnn",
        labels_used=n,
    )

    def score_row(i: int) -> str:
        p = [rng.random() for _ in range(CLASSES)]
        total = sum(p)
        probs = ",".join(f"{x / total:.9g}" for x in p)
        predicted, confidence = rng.randrange(CLASSES), max(p) / total
        return f"{i}\t{version.id}\t{predicted}\t{confidence}\t{{{probs}}}\t{rng.random()}\n"

    copy_rows(
        "learning_imagescore",
        "image_id, model_version_id, predicted, confidence, probabilities, score",
        (score_row(i) for i in ids),
    )
    # The label columns of the image rows are filled too, as a labeled project's are.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE images_image SET consensus_label = '3', agreement = 1.0, annotation_count = 1,"
            " predicted_label = '3', confidence = 0.9, uncertainty = 0.1 WHERE project_id = %s",
            [project.id],
        )


def measure(*, full: bool = False) -> dict[str, tuple[int, int]]:
    """(heap + TOAST bytes, index bytes) per table. VACUUM FULL compacts first: the baseline
    must not carry the free space of rows deleted earlier (a previous run's project)."""
    out = {}
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM {'FULL ' if full else ''}ANALYZE {table}")
            cursor.execute(
                f"SELECT pg_relation_size(oid) + coalesce(pg_relation_size(reltoastrelid), 0), "
                f"pg_indexes_size(oid) FROM pg_class WHERE oid = '{table}'::regclass"
            )
            out[table] = cursor.fetchone()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the project afterwards")
    args = parser.parse_args()
    start = time.perf_counter()
    slug = f"sizing-{args.images}"
    for leftover in Project.objects.filter(slug=slug):  # a --keep run's: measure from scratch
        project_delete(project=leftover)
    before = measure(full=True)
    project = load(slug, args.images)
    fill(project, args.images)
    after = measure()
    print(
        f"\n{args.images:,} images, one label, one lease and one 10-class score each "
        f"({time.perf_counter() - start:.0f} s)"
    )
    print(f"{'table':24} {'heap B/row':>11} {'index B/row':>12}")
    per_image = 0.0
    for table in TABLES:
        heap = (after[table][0] - before[table][0]) / args.images
        index = (after[table][1] - before[table][1]) / args.images
        per_image += heap + index
        print(f"{table:24} {heap:11.0f} {index:12.0f}")
    print(f"total per image: {per_image:,.0f} bytes")
    for n in (1_000_000, 10_000_000):
        print(f"  {n:>10,} images: {per_image * n / 1024**3:6.1f} GiB")
    if not args.keep:
        project_delete(project=project)
        measure(full=True)  # give the space back


if __name__ == "__main__":
    main()
