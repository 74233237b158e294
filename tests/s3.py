"""An S3 image store for tests: moto's S3 server over HTTP, in this process on a free port
(S3 lives off this machine; everything on LabelLoop's side is what production runs).

``s3_store`` makes a fresh bucket the image store, configured exactly as
``LABELLOOP_STORAGE=s3`` configures it (``s3_settings``); ``s3_env`` holds the variables a
``manage.py`` subprocess needs to use the same bucket. The fixtures are registered in
tests/conftest.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "labelloop-test",
    "AWS_SECRET_ACCESS_KEY": "labelloop-test-secret",
}


def s3_env(*, bucket: str, endpoint: str) -> dict[str, str]:
    """The settings a deployment on this bucket has (credentials come from ``s3_store``)."""
    return {
        "LABELLOOP_STORAGE": "s3",
        "LABELLOOP_S3_BUCKET": bucket,
        "LABELLOOP_S3_ENDPOINT_URL": endpoint,
        "LABELLOOP_S3_REGION": REGION,
    }


def dead_endpoint() -> str:
    """An endpoint on a local port nothing listens on: a bucket out of reach."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def s3_settings(*, bucket: str, endpoint: str) -> dict:
    """``STORAGES`` exactly as ``labeling/settings.py`` builds it from ``s3_env``."""
    env = {**os.environ, **s3_env(bucket=bucket, endpoint=endpoint)}
    code = "import json, labeling.settings as s; print(json.dumps(s.STORAGES))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@pytest.fixture(scope="session")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_store(settings, monkeypatch, s3_endpoint, _image_store):
    """A fresh bucket as the image store."""
    import boto3

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    bucket = f"labelloop-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    client.create_bucket(Bucket=bucket)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": s3_settings(bucket=bucket, endpoint=s3_endpoint)["default"],
    }

    def keys(prefix: str = "") -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def read(key: str) -> bytes:
        return client.get_object(Bucket=bucket, Key=key)["Body"].read()

    return SimpleNamespace(
        bucket=bucket,
        endpoint=s3_endpoint,
        env=s3_env(bucket=bucket, endpoint=s3_endpoint),
        client=client,
        keys=keys,
        read=read,
        disk=_image_store,
    )
