"""Ingest throughput against a bare baseline, measured side by side in one run.

    .venv/bin/python -m bench.ingest [--images 10000] [--repeats 2]

Generates N distinct 28x28 PNGs in memory, then times, alternately:
- service:  ``images_ingest`` (validate + decode, SHA-256, dedupe, content-addressed store,
            batched INSERTs) into a fresh project;
- baseline: the bare minimum — SHA-256, write the same files to disk, one COPY of the rows.
Both sides end with os.sync(), so each pays for making its own files durable; the order
alternates between rounds. Prints images/second and the per-round ratios service/baseline.
Uses the embedded PostgreSQL (or DATABASE_URL) and a temporary image store; cleans up after
itself.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

MEDIA = Path(tempfile.mkdtemp(prefix="labelloop-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
os.environ.setdefault("LABELLOOP_DEBUG", "true")
os.environ["LABELLOOP_MEDIA_ROOT"] = str(MEDIA / "service")

import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0)

from django.contrib.auth import get_user_model
from django.db import connection
from PIL import Image as PILImage

from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import Source
from labeling.projects.models import Project


def make_pngs(n: int) -> list[bytes]:
    rng = random.Random(0)
    out = []
    for _ in range(n):
        buffer = io.BytesIO()
        PILImage.frombytes("L", (28, 28), rng.randbytes(784)).save(buffer, format="PNG")
        out.append(buffer.getvalue())
    return out


def run_service(pngs: list[bytes], user, tag: str) -> float:
    project = Project.objects.create(name=f"bench {tag}", slug=f"bench-{tag}", labels=["a", "b"])
    limits = ingest_limits()
    sources = [
        Source(name=f"{i}.png", read=(lambda data=data: data)) for i, data in enumerate(pngs)
    ]
    os.sync()
    start = time.perf_counter()
    report = images_ingest(project=project, user=user, sources=sources)
    os.sync()  # durable, like the baseline: each side pays for its own dirty pages
    elapsed = time.perf_counter() - start
    assert report.summary["created"] == len(pngs), report.summary
    assert limits.max_bytes > 0
    project.delete()
    shutil.rmtree(MEDIA / "service", ignore_errors=True)
    return elapsed


def run_baseline(pngs: list[bytes], tag: str) -> float:
    root = MEDIA / "baseline"
    os.sync()
    start = time.perf_counter()
    rows = []
    for i, data in enumerate(pngs):
        sha = hashlib.sha256(data).hexdigest()
        path = root / sha[:2] / sha[2:4] / f"{sha}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        rows.append((sha, str(path), 28, 28, f"{i}.png", len(data)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE bench_{tag} (sha256 text, key text, width int, height int, "
            "name text, size bigint)"
        )
        with cursor.cursor.copy(f"COPY bench_{tag} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    os.sync()
    elapsed = time.perf_counter() - start
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE bench_{tag}")
    shutil.rmtree(root, ignore_errors=True)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    print(f"generating {args.images:,} PNGs ...", flush=True)
    pngs = make_pngs(args.images)
    user, _ = get_user_model().objects.get_or_create(username="bench-ingest")
    service, baseline = [], []
    try:
        for r in range(args.repeats):
            tag = f"{os.getpid()}_{r}"
            if r % 2:  # alternate the order, so neither side always runs on a warmer disk
                service.append(run_service(pngs, user, tag))
                baseline.append(run_baseline(pngs, tag))
            else:
                baseline.append(run_baseline(pngs, tag))
                service.append(run_service(pngs, user, tag))
            print(
                f"round {r + 1}: service {args.images / service[-1]:,.0f} img/s, "
                f"baseline {args.images / baseline[-1]:,.0f} img/s",
                flush=True,
            )
    finally:
        shutil.rmtree(MEDIA, ignore_errors=True)
    ratios = sorted(b / s for s, b in zip(service, baseline, strict=True))
    print(f"\nimages:             {args.images:,}")
    print(f"service  (median):  {args.images / statistics.median(service):,.0f} images/s")
    print(f"baseline (median):  {args.images / statistics.median(baseline):,.0f} images/s")
    print(f"ratio service/baseline per round: {', '.join(f'{r:.2f}' for r in ratios)}")
    print(f"ratio service/baseline (median of rounds): {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
