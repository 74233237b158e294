"""Stored embeddings at scale: the time to write (refresh) and read every image's embedding,
and the table's size on disk, at N images.

    .venv/bin/python -m bench.embeddings [--images 1000000] [--dim 128] [--keep]

Loads a project of N image rows with COPY (as bench.queue does), then times
`labeling.learning.backbones.embeddings_write` for all of them (what a pretraining's or an
import's write-back does: float16 vectors, upserted), the same again over existing rows (a
new backbone's refresh), and `embeddings_read` of them all; prints the table's size
(`pg_total_relation_size`) and bytes per image. Uses the embedded PostgreSQL (or
DATABASE_URL).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from django.db import connection

from bench.queue import load
from labeling.learning.backbones import embeddings_read, embeddings_write
from labeling.learning.models import Backbone, ImageEmbedding
from labeling.projects.services import project_delete


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128, help="128: ResNet-18 at width 16")
    parser.add_argument("--keep", action="store_true", help="keep the project afterwards")
    args = parser.parse_args()
    project = load(f"bench-embeddings-{args.images}", args.images)
    ids = list(project.images.order_by("id").values_list("id", flat=True))
    backbone = Backbone.objects.create(project=project, number=Backbone.objects.filter(
        project=project).count() + 1, source="import", file_key="bench", file_sha256="0" * 64,
        arch="resnet18", width=16, stem="small", input_size=32, embed_dim=args.dim)  # fmt: skip
    vectors = np.random.default_rng(0).standard_normal((len(ids), args.dim)).astype(np.float16)
    keys = [str(i) for i in ids]
    try:
        for what in ("write (first backbone)", "refresh (rows exist)"):
            start = time.perf_counter()
            written = embeddings_write(backbone, keys, vectors)
            seconds = time.perf_counter() - start
            print(f"{what}: {written:,} embeddings in {seconds:.1f} s "
                  f"({written / seconds:,.0f}/s)", flush=True)  # fmt: skip
        start = time.perf_counter()
        found = embeddings_read(backbone, ids)
        seconds = time.perf_counter() - start
        print(f"read: {len(found):,} in {seconds:.1f} s ({len(found) / seconds:,.0f}/s)")
        with connection.cursor() as cursor:
            table = ImageEmbedding._meta.db_table
            cursor.execute("SELECT pg_total_relation_size(%s)", [table])
            size = cursor.fetchone()[0]
        print(f"table {table}: {size / 2**20:,.1f} MiB, {size / len(ids):,.0f} bytes per image "
              f"({args.dim * 2} of vector)")  # fmt: skip
    finally:
        if not args.keep:
            project_delete(project=project)


if __name__ == "__main__":
    main()
