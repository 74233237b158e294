"""More like this, in a real browser: the annotator's M key and the image browser's button
show an image's nearest neighbours (those the API answers, in its order), and a neighbour
opens in the image browser's detail panel.

    (cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_similar.py -q
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image as PILImage

from labeling.core.storage import storage_open
from labeling.images.models import Image
from labeling.learning.backbones import embeddings_write
from labeling.learning.models import Backbone
from labeling.learning.similar import similar_index_refresh, similar_neighbours
from tests.e2e.conftest import add_digits, expect, log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)


def embed_by_pixels(project) -> None:
    """Every image's embedding: its pixels pooled to 7x7 (49 values), from the stored file,
    under a backbone's row: real features of the real digits, without a network to train."""
    backbone = Backbone.objects.create(project=project, number=1, source=Backbone.Source.IMPORT,
        file_key="backbones/pixels.pt", file_sha256="0" * 64, arch="resnet18", width=8,
        stem="small", input_size=28, embed_dim=49)  # fmt: skip
    keys, vectors = [], []
    for image_id, key in Image.objects.filter(project=project).values_list("id", "storage_key"):
        with storage_open(key=key) as handle:
            pixels = np.asarray(PILImage.open(handle).convert("L"), dtype=np.float32) / 255
        keys.append(str(image_id))
        vectors.append(pixels.reshape(7, 4, 7, 4).mean(axis=(1, 3)).ravel())
    embeddings_write(backbone, keys, np.array(vectors))
    similar_index_refresh(project=project)


def expected_names(project, image_id: int) -> list[str]:
    found = similar_neighbours(project=project, image_id=image_id, k=12)
    return [f"Image {i}," for i, _ in found.neighbours]


def test_the_annotator_presses_m_to_see_images_like_the_one_on_screen(page, alice, bob, project):
    add_digits(project, alice, 40)
    embed_by_pixels(project)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector("img[data-image-id]")
    shown = int(page.get_attribute("img[data-image-id]", "data-image-id"))

    page.keyboard.press("m")
    dialog = page.get_by_role("dialog", name="More like this")
    items = dialog.get_by_role("list", name=f"Images like image {shown}").get_by_role("img")
    expect(items).to_have_count(12)
    names = [items.nth(n).get_attribute("aria-label") for n in range(12)]
    assert [name.split(" ")[0] + " " + name.split(" ")[1] for name in names] == expected_names(
        project, shown
    )
    assert all(re.search(r"distance \d\.\d{3}$", name) for name in names)
    screenshot(page, "annotator-more-like-this")
    page.keyboard.press("3")  # class keys wait while the dialog is open
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert int(page.get_attribute("img[data-image-id]", "data-image-id")) == shown
    assert page.get_by_test_id("session-count").inner_text() == "0"


def test_the_image_browser_shows_images_like_the_chosen_one_and_opens_a_neighbour(
    page, alice, project
):
    add_digits(project, alice, 40)
    embed_by_pixels(project)
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/images")
    page.locator(".thumbs button").first.click()
    detail = page.get_by_role("complementary", name="Image details")
    heading = detail.get_by_role("heading", level=2)
    expect(heading).to_have_text(re.compile(r"^Image \d+"))
    chosen = int(re.search(r"\d+", heading.inner_text()).group())

    detail.get_by_role("button", name="More like this").click()
    neighbours = detail.get_by_role("list", name=f"Images like image {chosen}")
    buttons = neighbours.get_by_role("button")
    expect(buttons).to_have_count(12)
    first = buttons.first.get_attribute("aria-label")
    assert first.startswith(expected_names(project, chosen)[0])
    screenshot(page, "dashboard-more-like-this")
    buttons.first.click()
    neighbour = int(re.search(r"\d+", first).group())
    expect(heading).to_have_text(re.compile(rf"^Image {neighbour}\b"))
