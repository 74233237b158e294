"""Retraining from the dashboard: "Retrain now", live progress to "succeeded", and a new point
on the learning curve, with the real worker training on local Ray.

Skipped only while the training-runs endpoint of the active-learning loop does not exist.
"""

from __future__ import annotations

import re
import threading

import pytest
from django.db import connections
from django.urls import Resolver404, resolve

from labeling.images.models import Image
from labeling.learning.models import ModelVersion
from tests.e2e.conftest import add_digits, expect, log_in, screenshot

RUN_TIMEOUT_MS = 240_000  # a CPU run on a hundred 28x28 digits, Ray's start included


def training_runs_endpoint_exists() -> bool:
    try:
        resolve("/api/projects/1/training-runs/")
    except Resolver404:
        return False
    return True


pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(
        not training_runs_endpoint_exists(),
        reason="the training-runs endpoint does not exist yet (active-learning issue)",
    ),
]


def worker_in_background() -> tuple[threading.Thread, list[BaseException]]:
    """The worker, in this process so that it uses the test database, until the queue is
    empty (as `manage.py worker --once` does, minus the signal handlers of a main thread)."""
    errors: list[BaseException] = []

    def work() -> None:
        from labeling.learning.worker import Worker

        try:
            # Ray comes from the ray_session fixture, started in the main thread: Ray's head
            # processes die with the thread that started them.
            Worker(poll_seconds=0.2).run_forever(once=True)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work, name="worker", daemon=True)
    thread.start()
    return thread, errors


def test_admin_retrains_watches_the_run_succeed_and_the_curve_gains_a_point(
    ray_session, page, alice, project
):
    project.retrain_every = 0  # automatic retrains off: the 100 imported labels wait for her
    project.save(update_fields=["retrain_every"])
    add_digits(project, alice, 100, labeled=True)
    add_digits(project, alice, 100, start=100)
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/model")
    expect(page.get_by_test_id("curve-empty")).to_be_visible()  # no model, no point yet

    page.get_by_role("button", name="Retrain now").click()
    expect(page.get_by_test_id("run-progress")).to_be_visible()
    expect(page.get_by_role("button", name="Cancel run")).to_be_visible()
    worker, errors = worker_in_background()
    expect(page.get_by_test_id("run-status")).to_have_text("running", timeout=RUN_TIMEOUT_MS)
    expect(page.get_by_role("progressbar")).to_be_visible()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    worker.join(timeout=60)
    assert not errors, errors

    expect(page.get_by_test_id("learning-curve")).to_have_attribute("data-points", "1")
    # One point makes no band: its interval shows as a bar through the point.
    expect(page.get_by_test_id("learning-curve")).to_have_attribute("data-interval", "bar")
    expect(page.get_by_test_id("active-model")).to_contain_text("Active model v1")
    # How far to trust the accuracy: led by its 95% interval, which is wide on ten labels (10%
    # of 100), with the labels it was measured on and a warning that they are few.
    version = ModelVersion.objects.get(project=project, number=1)
    held_out = version.metrics["n_val"]
    assert held_out == 10
    expect(page.get_by_test_id("active-model")).to_contain_text(
        re.compile(
            rf"accuracy likely \d+\u2013\d+% \(measured [\d.]+% on {held_out} held-out labels\)"
        )
    )
    expect(page.get_by_test_id("few-held-out")).to_contain_text(f"Only {held_out} held-out labels")
    expect(page.get_by_role("row", name=re.compile(r"^v1"))).to_contain_text(str(held_out))
    screenshot(page, "dashboard-model-trained")

    # The confusion matrix names the model's classes, in its order, even after the project
    # reorders its own (the model learned "0" first; the project now lists "9" first).
    matrix = page.locator("table.confusion")
    expect(matrix.locator("thead th").first).to_have_text("0")
    project.labels = list(reversed(project.labels))
    project.save(update_fields=["labels"])
    page.reload()
    expect(matrix.locator("thead th").first).to_have_text("0")
    expect(matrix.locator("tbody th").last).to_have_text("9")

    # More digits arrive. The model scores just them (a `new_images` run) and slots them into
    # the queue with its suggestions; that queued run does not hold back a retrain.
    add_digits(project, alice, 20, start=200)
    page.reload()
    expect(page.get_by_test_id("run-status")).to_have_text("queued")
    expect(page.get_by_test_id("run-progress")).to_contain_text("(scoring new images)")
    expect(page.get_by_role("button", name="Retrain now")).to_be_enabled()
    worker, errors = worker_in_background()
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    worker.join(timeout=60)
    assert not errors, errors
    new = Image.objects.filter(project=project, original_name__gte="digit-0200")
    assert new.count() == 20
    assert not new.filter(predicted_label=None).exists() and not new.filter(priority__lte=0)
    assert ModelVersion.objects.filter(project=project).count() == 1  # scored, not retrained
