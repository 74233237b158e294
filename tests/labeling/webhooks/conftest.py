"""Fixtures for webhooks: a real HTTP receiver on loopback (``http.server`` in a thread) that
records what arrives and answers with scripted status codes; settings that let webhooks
call it (loopback is refused by default) and send labels without a batching wait."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from labeling.webhooks.services import webhook_create


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict:
        return json.loads(self.body)

    def signed_with(self, secret: str) -> bool:
        """What a receiver does: HMAC "<timestamp>." + the raw body with the shared secret."""
        message = self.headers.get("X-LabelLoop-Timestamp", "").encode() + b"." + self.body
        expected = "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        return hmac.compare_digest(self.headers.get("X-LabelLoop-Signature", ""), expected)


class Receiver:
    """Answers each POST with the next scripted (status, headers, delay), then 200s."""

    def __init__(self, tls: ssl.SSLContext | None = None, host: str = "127.0.0.1") -> None:
        self.received: list[Received] = []
        self._script: deque[tuple[int, dict[str, str], float]] = deque()
        self._lock = threading.Lock()
        self._released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    receiver.received.append(Received(self.path, dict(self.headers), body))
                    status, headers, delay = (
                        receiver._script.popleft() if receiver._script else (200, {}, 0.0)
                    )
                if delay:
                    receiver._released.wait(delay)
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender timed out and hung up: expected in timeout tests

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://{host}:{self.server.server_port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def answer(self, *statuses: int, headers: dict[str, str] | None = None, delay: float = 0.0):
        with self._lock:
            self._script.extend((s, headers or {}, delay) for s in statuses)

    def events(self) -> list[str]:
        return [r.headers["X-LabelLoop-Event"] for r in self.received]

    def wait_for(self, count: int, timeout: float) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} requests arrived")
            time.sleep(0.05)
        return self.received

    def close(self) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()


@pytest.fixture
def closed_port_url():
    """A loopback URL nobody listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


@pytest.fixture(autouse=True)
def _webhook_settings(settings):
    settings.LABELLOOP_WEBHOOK_ALLOW_PRIVATE = True  # the receiver is on loopback
    settings.LABELLOOP_WEBHOOK_BATCH_SECONDS = 0.0
    settings.LABELLOOP_WEBHOOK_TIMEOUT = 5.0
    settings.LABELLOOP_WEBHOOK_MAX_ATTEMPTS = 8
    return settings


@pytest.fixture
def hook(project, alice, receiver):
    """An active webhook of ``project`` pointing at the receiver, subscribed to everything."""
    return webhook_create(project=project, user=alice, url=receiver.url)
