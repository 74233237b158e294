"""The activation map in a real browser: toggled with H over the annotator's image (drawn by
the worker's predictor thread with a model really trained on digits), in the dashboard's image
detail, and the shortcut check on the model tab.

    (cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_explanations.py -q
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
from django.core.files import File
from django.core.files.storage import default_storage

from labeling.learning.models import ModelVersion
from labeling.learning.worker import Predictor
from tests.e2e.conftest import add_digits, expect, log_in, mnist, screenshot
from tests.factories import model_version

pytestmark = pytest.mark.django_db(transaction=True)

IMAGE = "img[data-image-id]:not([data-testid=cam-overlay])"
OVERLAY = "[data-testid=cam-overlay]"
CHECK = {
    "band": 0.125,
    "threshold": 0.6,
    "per_class": {
        "0": {"images": 8, "border_share": 0.12, "mean_confidence": 0.98, "flagged": False},
        "1": {"images": 8, "border_share": 0.84, "mean_confidence": 0.99, "flagged": True},
    },
    "flagged": ["1"],
    "max_border_share": 0.84,
}


def active_digit_model(project, tmp_path, versions: int = 1) -> ModelVersion:
    """A seed_cnn trained (100 steps) on 300 real digits, registered as the active v1 (and as
    inactive v2, ... up to `versions`)."""
    import torch

    from training.contracts import TrainConfig
    from training.models import checkpoint_meta, save_checkpoint
    from training.train import fit

    torch.set_num_threads(1)
    pixels, labels = mnist()
    x = pixels[-300:].reshape(-1, 1, 28, 28).astype(np.uint8)
    y = labels[-300:].astype(np.int64)
    classes = tuple(str(d) for d in range(10))
    config = replace(TrainConfig(), max_steps=100, min_steps=0, refit=False, use_gpu=False)
    model, _ = fit(x, y, classes=classes, config=config)
    path = tmp_path / "digits.pt"
    meta = checkpoint_meta(
        model, arch="seed_cnn", classes=classes, input_size=28, input_channels=1, dropout=0.5
    )
    save_checkpoint(str(path), model, meta)
    version = model_version(project, 1, active=True, metrics={"shortcut_check": CHECK})
    for older in [version, *(model_version(project, n) for n in range(2, versions + 1))]:
        with open(path, "rb") as handle:
            default_storage.save(older.checkpoint_key, File(handle))
    return version


@pytest.fixture
def worker():
    """The worker's predictor thread, which draws the maps."""
    stop = threading.Event()
    predictor = Predictor(stop)
    predictor.start()
    yield predictor
    stop.set()
    predictor.join(timeout=5)


def shown_image(page) -> str:
    return page.get_attribute(IMAGE, "data-image-id")


def expect_overlay_on(page, image_id: str) -> None:
    """The map is loaded, belongs to `image_id`, and covers exactly that image's box."""
    overlay = page.locator(OVERLAY)
    expect(overlay).to_have_attribute("data-image-id", image_id)
    page.wait_for_function(
        "sel => { const o = document.querySelector(sel); return o && o.naturalWidth > 0; }",
        arg=OVERLAY,
    )
    image_box = page.locator(f'{IMAGE}[data-image-id="{image_id}"]').bounding_box()
    assert overlay.bounding_box() == image_box


def test_h_lays_the_map_over_the_annotators_image_and_takes_it_off(
    page, alice, bob, project, worker, tmp_path
):
    project.show_suggestions = True
    project.input_size, project.input_channels = 28, 1
    project.save()
    add_digits(project, alice, 6)
    active_digit_model(project, tmp_path)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector(IMAGE)
    expect(page.locator(OVERLAY)).to_have_count(0)

    page.keyboard.press("h")
    first = shown_image(page)
    expect_overlay_on(page, first)
    expect(page.get_by_test_id("cam-note")).to_contain_text("Map of “")
    screenshot(page, "annotator-map")

    # Labeled: the next image gets its own map; the first one's does not linger over it.
    page.keyboard.press("0")
    page.wait_for_function(
        "([sel, before]) => document.querySelector(sel)?.dataset.imageId !== before",
        arg=[IMAGE, first],
    )
    expect_overlay_on(page, shown_image(page))

    page.keyboard.press("h")
    expect(page.locator(OVERLAY)).to_have_count(0)
    page.keyboard.press("?")
    keys = page.get_by_role("dialog", name="Keyboard")
    expect(keys.get_by_role("row", name="H Show or hide what the model looked at")).to_be_visible()


def test_the_dashboard_shows_the_map_in_the_image_detail_and_the_shortcut_flag(
    page, alice, project, worker, tmp_path
):
    project.input_size, project.input_channels = 28, 1
    project.save()
    add_digits(project, alice, 4)
    active_digit_model(project, tmp_path, versions=2)
    project.images.update(predicted_label="3", confidence=0.9)
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/images")
    page.locator(".thumbs button").first.click()
    detail = page.get_by_role("complementary", name="Image details")
    detail.get_by_label("Show what the model looked at").check()
    image_id = detail.locator(IMAGE).get_attribute("data-image-id")
    expect_overlay_on(page, image_id)
    expect(detail.get_by_test_id("cam-note")).to_contain_text("v1)")
    detail.get_by_label("Model version").select_option("2")  # any version, not only the active
    expect(detail.get_by_test_id("cam-note")).to_contain_text("v2)")
    expect_overlay_on(page, image_id)
    detail.get_by_label("Show what the model looked at").uncheck()
    expect(page.locator(OVERLAY)).to_have_count(0)

    page.goto(f"/projects/{project.id}/admin/model")
    check = page.get_by_test_id("shortcut-check")
    expect(check.get_by_test_id("shortcut-flag")).to_contain_text("Possible shortcut in “1”")
    expect(check.locator("tr.row-flagged th")).to_have_text("1")
    expect(check).to_contain_text("a class is flagged above 60.0%")
    check.scroll_into_view_if_needed()
    screenshot(page, "dashboard-shortcut")
