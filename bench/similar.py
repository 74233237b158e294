"""Similar images ("more like this") at 10,000 and 1,000,000 images, side by side in one run:
query latency (p50/p99) through the API, the index's build and refresh times, and its recall.

    .venv/bin/python -m bench.similar [--sizes 10000,1000000] [--dim 128] [--queries 500]
                                      [--k 12] [--ef 40,100,200] [--keep]

For each size: a project of N image rows (COPY, as bench.queue loads them) whose embeddings from
one backbone (float16, ``embeddings_write`` as a backbone's write-back stores them) are
clustered (N/100 centres, unit normal; each vector a centre plus normal noise of scale 0.5), so
that neighbours mean something, as they do in real embeddings. 99% of them are stored and the
worker's ``similar_index_refresh`` builds the pgvector HNSW index (timed); then the last 1% are
stored and the refresh tops the index up (timed), and a refresh with nothing new (timed), and
the embedding map's drawing (timed). Then ``GET /api/images/{id}/similar/?k=`` through DRF's
in-process client for random anchors (a warm-up, then ``--queries`` timed): p50/p99. Beside it, for
the ratio: the same query answered exactly by PostgreSQL (the index turned off: a scan of every
vector) and by numpy over the vectors held in memory (what an index-less web process would at
best do), and the HNSW answers' recall against the exact ones. Uses the embedded PostgreSQL (or
DATABASE_URL).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
os.environ.setdefault("LABELLOOP_DEBUG", "true")

import django
from django.core.management import call_command

django.setup()
call_command("migrate", verbosity=0)

import numpy as np
from django.db import connection, transaction
from rest_framework.test import APIClient

from bench.queue import load
from labeling.learning import similar
from labeling.learning.backbones import embeddings_write
from labeling.learning.embedding_map import embedding_map_build
from labeling.learning.models import Backbone
from labeling.learning.similar import similar_index_refresh, similar_neighbours, table_name
from labeling.projects.models import Membership, Role
from labeling.projects.services import project_delete
from tests.factories import UserFactory


def clustered(n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 100), dim)).astype(np.float32)
    picks = rng.integers(0, len(centres), n)
    out = np.empty((n, dim), dtype=np.float16)
    for start in range(0, n, 100_000):  # never the whole pool in float32 at once
        end = min(n, start + 100_000)
        noise = rng.standard_normal((end - start, dim)).astype(np.float32) * 0.5
        out[start:end] = centres[picks[start:end]] + noise
    return out


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, int(0.99 * len(ms)))]


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def build(project, n: int, dim: int) -> tuple[list[int], np.ndarray, dict]:
    """Store the vectors (99%, then 1%) and time the index's build and refreshes."""
    ids = list(project.images.order_by("id").values_list("id", flat=True))
    backbone = Backbone.objects.create(project=project, number=Backbone.objects.filter(
        project=project).count() + 1, source="import", file_key="bench", file_sha256="0" * 64,
        arch="resnet18", width=16, stem="small", input_size=32, embed_dim=dim)  # fmt: skip
    vectors = clustered(n, dim)
    keys = [str(i) for i in ids]
    head = int(n * 0.99)
    times = {}
    times["store"], _ = timed(lambda: embeddings_write(backbone, keys[:head], vectors[:head]))
    times["build"], index = timed(lambda: similar_index_refresh(project=project))
    assert index.size == head, index.size
    embeddings_write(backbone, keys[head:], vectors[head:])
    times["top-up 1%"], index = timed(lambda: similar_index_refresh(project=project))
    assert index.size == n, index.size
    times["refresh, nothing new"], _ = timed(lambda: similar_index_refresh(project=project))
    times["embedding map"], _ = timed(lambda: embedding_map_build(project=project))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_total_relation_size(%s)", [table_name(project.pk)])
        times["index table MiB"] = cursor.fetchone()[0] / 2**20
    for what, value in times.items():
        print(f"  {what}: {value:,.1f}" + ("" if "MiB" in what else " s"), flush=True)
    return ids, vectors, times


def api_latency(project, ids: list[int], k: int, queries: int) -> tuple[list[float], dict]:
    user = UserFactory(username=f"bench-similar-{project.pk}-{random.getrandbits(32):x}")
    Membership.objects.create(project=project, user=user, role=Role.VIEWER)
    client = APIClient()
    client.force_authenticate(user=user)
    rng = random.Random(0)
    answers: dict[int, list[int]] = {}
    for _ in range(50):  # warm-up: the index's pages into the caches
        client.get(f"/api/images/{rng.choice(ids)}/similar/", {"k": k})
    seconds = []
    for _ in range(queries):
        anchor = rng.choice(ids)
        start = time.perf_counter()
        response = client.get(f"/api/images/{anchor}/similar/", {"k": k})
        seconds.append(time.perf_counter() - start)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["method"] == "hnsw", body["method"]
        answers[anchor] = [r["id"] for r in body["results"]]
    return seconds, answers


def query_latency(project, ids: list[int], k: int, queries: int) -> tuple[list[float], dict]:
    """The query alone (``similar_neighbours``: the index's SQL), without the API around it;
    and its answers."""
    rng, seconds, answers = random.Random(0), [], {}
    for _ in range(queries):
        anchor = rng.choice(ids)
        start = time.perf_counter()
        found = similar_neighbours(project=project, image_id=anchor, k=k)
        seconds.append(time.perf_counter() - start)
        assert found.method == "hnsw" and len(found.neighbours) == k
        answers[anchor] = [i for i, _ in found.neighbours]
    return seconds, answers


def ef_sweep(project, ids, vectors, args) -> None:
    """The query and its recall at other HNSW beam widths (``hnsw.ef_search``) than the
    product's max(100, 2k): what more recall costs."""
    default = similar.EF_SEARCH_MIN
    try:
        for ef in args.ef:
            similar.EF_SEARCH_MIN = ef
            seconds, answers = query_latency(project, ids, args.k, args.queries)
            _, recall = exact_numpy(ids, vectors, answers, args.k)
            p50, p99 = percentiles(seconds)
            print(f"  ef_search {max(ef, 2 * args.k)}: query p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
                  f"recall@{args.k} {recall:.3f}", flush=True)  # fmt: skip
    finally:
        similar.EF_SEARCH_MIN = default


def exact_sql(project, ids: list[int], k: int, queries: int) -> list[float]:
    """The same query with the index turned off: PostgreSQL computes every distance."""
    table, rng, seconds = table_name(project.pk), random.Random(1), []
    for _ in range(queries):
        anchor = rng.choice(ids)
        start = time.perf_counter()
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off")
            cursor.execute(f"SELECT vec::text FROM {table} WHERE image_id = %s", [anchor])
            (vec,) = cursor.fetchone()
            cursor.execute(
                f"SELECT image_id FROM {table} ORDER BY vec <=> %s::halfvec LIMIT %s",
                [vec, k + 1],
            )
            cursor.fetchall()
        seconds.append(time.perf_counter() - start)
    return seconds


def exact_numpy(ids, vectors, answers: dict[int, list[int]], k: int) -> tuple[list[float], float]:
    """numpy over the vectors in memory (normalised once, not timed): per-query time, and the
    recall of the API's (HNSW) answers against these exact ones."""
    x = vectors.astype(np.float32)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    position = {image_id: n for n, image_id in enumerate(ids)}
    seconds, hits, total = [], 0, 0
    for anchor, found in answers.items():
        start = time.perf_counter()
        d = 1.0 - x @ x[position[anchor]]
        d[position[anchor]] = np.inf
        nearest = np.argpartition(d, k)[:k]
        seconds.append(time.perf_counter() - start)
        truth = {ids[i] for i in nearest}
        hits += len(truth & set(found))
        total += k
    return seconds, hits / total


def one_size(n: int, args) -> dict:
    print(f"--- {n:,} images", flush=True)
    project = load(f"bench-similar-{n}", n)
    try:
        ids, vectors, times = build(project, n, args.dim)
        api, answers = api_latency(project, ids, args.k, args.queries)
        query, _ = query_latency(project, ids, args.k, args.queries)
        scan = exact_sql(project, ids, args.k, max(10, args.queries // (50 if n > 100_000 else 5)))
        numpy_s, recall = exact_numpy(ids, vectors, answers, args.k)
        if args.ef:
            ef_sweep(project, ids, vectors, args)
    finally:
        if not args.keep:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {table_name(project.pk)}")
            project_delete(project=project)
    out = {
        "api": percentiles(api),
        "query": percentiles(query),
        "scan": percentiles(scan),
        "numpy": percentiles(numpy_s),
    }
    for what, (p50, p99) in out.items():
        print(f"  {what}: p50 {p50:.2f} ms, p99 {p99:.2f} ms", flush=True)
    print(f"  recall@{args.k} of the HNSW answers: {recall:.3f}", flush=True)
    return out | {"times": times, "recall": recall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--dim", type=int, default=128, help="128: ResNet-18 at width 16")
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=12)
    parser.add_argument(
        "--ef", type=lambda v: [int(x) for x in v.split(",")], default=[],
        help="also time the query at these hnsw.ef_search values, e.g. 40,100,200",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the projects afterwards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    results = {n: one_size(n, args) for n in sizes}
    if len(sizes) == 2:
        small, large = (results[n] for n in sizes)
        print(f"--- {sizes[1]:,} / {sizes[0]:,}")
        for what in ("api", "query", "scan", "numpy"):
            p50 = large[what][0] / small[what][0]
            p99 = large[what][1] / small[what][1]
            print(f"  {what}: p50 x{p50:.2f}, p99 x{p99:.2f}")
        for n in sizes:
            r = results[n]
            scan, numpy_ = r["scan"][0] / r["query"][0], r["numpy"][0] / r["query"][0]
            print(f"  at {n:,}: exact scan / HNSW query p50 x{scan:.1f}, "
                  f"numpy in memory / HNSW query p50 x{numpy_:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
