"""Queue latency at 1,000,000 images against 10,000, measured side by side in one run.

    .venv/bin/python -m bench.queue [--large 1000000] [--small 10000] [--clients 32]
                                    [--requests 3000] [--keep]

Loads two projects with COPY (not ORM loops), then for each drives `task_lease_next` +
`annotation_submit` (the services behind POST .../tasks/next/ and POST /api/annotations/) from
N concurrent clients (processes, each with its own PostgreSQL connection) for a fixed number
of cycles, twice: with a think time between next and submit (annotators at work) and with
none (saturation), and prints p50/p99 per operation and the 1M/10k ratios. Ends with
EXPLAIN ANALYZE of the lease statement on the large project. Uses the embedded PostgreSQL
(or DATABASE_URL).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import random
import statistics
import time
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
os.environ.setdefault("LABELLOOP_DEBUG", "true")

import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0)

from django.contrib.auth import get_user_model
from django.db import connection, connections

from labeling.annotations import services as queue
from labeling.projects.models import Membership, Project, Role
from labeling.projects.services import project_delete

COLUMNS = (
    "project_id, sha256, storage_key, width, height, mode, format, original_name, size_bytes, "
    "status, priority, annotation_count, random_key, in_random_slice, lease_exploration, "
    "created_at, updated_at"
)


def load(slug: str, n: int) -> Project:
    existing = Project.objects.filter(slug=slug).first()
    if existing is not None and existing.images.count() == n:
        print(f"reusing {slug} ({n:,} images)", flush=True)
        return existing
    if existing is not None:
        project_delete(project=existing)
    project = Project.objects.create(
        name=slug, slug=slug, labels=[str(i) for i in range(10)], exploration_fraction=0.1
    )
    start = time.perf_counter()
    rng = random.Random(n)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY images_image ({COLUMNS}) FROM STDIN") as copy:
            chunk = io.StringIO()
            for i in range(n):
                sha = f"{rng.getrandbits(256):064x}"
                chunk.write(
                    f"{project.id}\t{sha}\timages/{sha}.png\t28\t28\tL\tPNG\t{i}.png\t300\t"
                    f"unlabeled\t{rng.random()}\t0\t{rng.random()}\tf\tf\tnow\tnow\n"
                )
                if i % 50_000 == 49_999:
                    copy.write(chunk.getvalue())
                    chunk = io.StringIO()
            copy.write(chunk.getvalue())
        cursor.execute("ANALYZE images_image")
    print(f"loaded {slug}: {n:,} images in {time.perf_counter() - start:.1f} s", flush=True)
    return project


def client(args: tuple[int, int, list[int], int, float]) -> dict[str, list[float]]:
    """One annotator's client: its own process and connection, next -> think -> submit."""
    index, project_id, user_ids, requests, think = args
    project = Project.objects.get(pk=project_id)
    user = get_user_model().objects.get(pk=user_ids[index % len(user_ids)])
    rng = random.Random(index)
    latencies: dict[str, list[float]] = {"next": [], "submit": []}
    for _ in range(requests):
        t0 = time.perf_counter()
        tasks = queue.task_lease_next(project=project, user=user, count=1, rng=rng)
        latencies["next"].append(time.perf_counter() - t0)
        if not tasks:
            continue
        image = project.images.model(id=tasks[0].image_id, project=project)
        if think:
            time.sleep(rng.expovariate(1 / think))  # looking at the image
        t1 = time.perf_counter()
        queue.annotation_submit(
            image=image, user=user, label=str(rng.randrange(10)), client_id=uuid.uuid4()
        )
        latencies["submit"].append(time.perf_counter() - t1)
    connections.close_all()
    return latencies


def drive(
    project: Project, users: list, clients: int, requests: int, think: float = 0.0
) -> dict[str, list[float]]:
    """``clients`` processes, like gunicorn workers serving that many annotators."""
    connections.close_all()  # children must open their own connections
    ids = [u.pk for u in users]
    jobs = [(i, project.id, ids, requests // clients, think) for i in range(clients)]
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        parts = pool.map(client, jobs)
    return {key: [x for part in parts for x in part[key]] for key in ("next", "submit")}


def report(results: dict, args, title: str, seconds: float) -> None:
    print(f"\n{args.clients} concurrent clients, {args.requests:,} cycles per size, {title}")
    print(f"{'':8} {'next p50':>9} {'next p99':>9} {'submit p50':>11} {'submit p99':>11}")
    for name, lat in results.items():
        print(
            f"{name:8} {pct(lat['next'], 50):8.1f}ms {pct(lat['next'], 99):8.1f}ms "
            f"{pct(lat['submit'], 50):10.1f}ms {pct(lat['submit'], 99):10.1f}ms"
        )
    for op in ("next", "submit"):
        ratio = pct(results["1M"][op], 99) / pct(results["10k"][op], 99)
        print(f"p99 ratio 1M/10k ({op}): {ratio:.2f}")
    cycles = sum(len(lat["submit"]) for lat in results.values())
    print(f"throughput: {cycles / seconds:,.0f} next+submit cycles/s")


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000 if values else 0


def explain(project: Project, user) -> str:
    sql = queue._LEASE_SQL.format(
        where=queue._QUEUE_FILTER, extra="", order="priority DESC, random_key"
    )
    params = {
        "project": project.id,
        "user": user.pk,
        "ttl": 600,
        "count": 5,
        "exploration": False,
    }
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("ROLLBACK")
    return plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=3200)
    parser.add_argument(
        "--think-ms", type=float, default=500, help="mean think time between next and submit"
    )
    parser.add_argument("--keep", action="store_true", help="keep the projects for a rerun")
    args = parser.parse_args()
    users = []
    for i in range(8):
        user, _ = get_user_model().objects.get_or_create(username=f"bench-queue-{i}")
        users.append(user)
    small = load("bench-queue-small", args.small)
    large = load("bench-queue-large", args.large)
    for project in (small, large):
        for user in users:
            Membership.objects.get_or_create(
                project=project, user=user, defaults={"role": Role.ANNOTATOR}
            )
    try:
        # Warm both, then measure alternately so noise on this shared machine hits both.
        for project in (small, large):
            drive(project, users, args.clients, args.clients * 2)
        for think, title in (
            (args.think_ms / 1000, f"mean think time {args.think_ms:.0f} ms (annotators at work)"),
            (0.0, "no think time (saturation: latency = clients / throughput)"),
        ):
            results = {}
            start = time.perf_counter()
            for name, project in (("10k", small), ("1M", large)):
                results[name] = drive(project, users, args.clients, args.requests, think)
            seconds = time.perf_counter() - start
            report(results, args, title, seconds)
        print("\nEXPLAIN ANALYZE of the lease statement on the large project:")
        print(explain(large, users[0]))
    finally:
        if not args.keep:
            for project in (small, large):
                project_delete(project=project)


if __name__ == "__main__":
    main()
