from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import add_digits, log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def test_look(page, console, alice, bob, project):
    console.allow(r".*")
    add_digits(project, alice, 30, labeled=True)
    add_digits(project, alice, 30, start=30)
    page.goto("/login")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("wrong")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_be_visible()
    screenshot(page, "look-login")
    page.get_by_label("Password").fill("correct horse battery")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda u: "/login" not in u)
    screenshot(page, "look-projects")
    page.goto(f"/projects/{project.id}/admin/settings")
    expect(page.get_by_label("Role of bob")).to_be_visible()
    screenshot(page, "look-settings")

    state = {"polls": 0}
    run = {"id": 7, "status": "running", "stage": "training", "progress": 0.42, "trigger": "manual",
           "labels_snapshot": 30, "metrics": None, "error": None, "created_at": "2026-01-01T10:00:00Z",
           "started_at": "2026-01-01T10:00:01Z", "finished_at": None, "model_version": None}
    versions = [
        {"id": 2, "number": 2, "metrics": {"accuracy": 0.91, "ece": 0.031, "per_class": {},
         "confusion": [[9 if i == j else (1 if (i + j) % 7 == 0 else 0) for j in range(10)] for i in range(10)]},
         "labels_used": 60, "created_at": "2026-01-01T09:00:00Z", "is_active": True},
        {"id": 1, "number": 1, "metrics": {"accuracy": 0.74, "ece": 0.08}, "labels_used": 20,
         "created_at": "2026-01-01T08:00:00Z", "is_active": False},
    ]

    def runs(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps([run]))

    def one_run(route):
        state["polls"] += 1
        body = dict(run, progress=min(1, 0.42 + 0.1 * state["polls"]))
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    def model_versions(route):
        route.fulfill(status=200, content_type="application/json", body=json.dumps(versions))

    def stats(route):
        response = route.fetch()
        body = response.json()
        body["learning_curve"] = [
            {"labels": 20, "accuracy": 0.74, "random_slice_accuracy": 0.71},
            {"labels": 40, "accuracy": 0.85, "random_slice_accuracy": 0.8},
            {"labels": 60, "accuracy": 0.91, "random_slice_accuracy": 0.88},
        ]
        body["uncertainty_histogram"] = {"edges": [i / 10 for i in range(11)], "counts": [30, 20, 12, 8, 5, 4, 3, 2, 1, 1]}
        route.fulfill(response=response, json=body)

    page.route("**/api/projects/*/training-runs/", runs)
    page.route("**/api/training-runs/*/", one_run)
    page.route("**/api/projects/*/model-versions/", model_versions)
    page.route("**/api/projects/*/stats/", stats)
    page.goto(f"/projects/{project.id}/admin/model")
    expect(page.get_by_test_id("run-status")).to_have_text("running")
    page.wait_for_timeout(1500)
    screenshot(page, "look-model")
    page.set_viewport_size({"width": 1280, "height": 1400})
    screenshot(page, "look-model-tall")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector("img[data-image-id]")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    screenshot(page, "look-focus")
    page.keyboard.press("?")
    screenshot(page, "look-help")
    print("CONSOLE", console.errors)
