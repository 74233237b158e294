"""More like this, in a real browser: the annotator's M key and the image browser's button
show an image's nearest neighbours (those the API answers, in its order), and a neighbour
opens in the image browser's detail panel. The dashboard's embedding map: a lasso drawn with
the mouse opens exactly the images inside it in the image browser.

    (cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_similar.py -q
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from PIL import Image as PILImage

from labeling.core.storage import storage_open
from labeling.images.models import Image
from labeling.learning.backbones import embeddings_write
from labeling.learning.embedding_map import embedding_map_build
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


# The map's drawing (frontend/src/lib/embeddingMap.ts): a 560 px square, 12 px margin, y up.
MAP_SIZE, MAP_PAD = 560, 12


def lasso_left_of(page, canvas, cut: float) -> None:
    """Draw a lasso around the map's points left of ``cut`` (a map x, 0..1) with the mouse."""
    box = canvas.bounding_box()
    scale = box["width"] / MAP_SIZE  # the page may draw the canvas smaller
    right = drawn_at(cut, 0)[0]
    corners = [(2, 2), (right, 2), (right, MAP_SIZE - 2), (2, MAP_SIZE - 2), (2, 4)]
    page.mouse.move(box["x"] + corners[0][0] * scale, box["y"] + corners[0][1] * scale)
    page.mouse.down()
    for cx, cy in corners[1:]:
        page.mouse.move(box["x"] + cx * scale, box["y"] + cy * scale, steps=5)
    page.mouse.up()


def drawn_at(x: float, y: float) -> tuple[float, float]:
    span = MAP_SIZE - 2 * MAP_PAD
    return MAP_PAD + x * span, MAP_SIZE - MAP_PAD - y * span


def test_a_lasso_on_the_map_opens_the_images_inside_it_in_the_image_browser(page, alice, project):
    add_digits(project, alice, 40, labeled=True)
    embed_by_pixels(project)
    points = embedding_map_build(project=project).points
    # The lasso: a rectangle over the left half of the map, between two points (never on one).
    xs = sorted(points["x"])
    cut = next(
        (a + b) / 2 for a, b in itertools.pairwise(xs[15:]) if b - a > 0.01
    )  # a gap near the middle
    inside = {i for i, x in zip(points["id"], points["x"], strict=True) if x < cut}
    assert 10 <= len(inside) <= 30

    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/map")
    canvas = page.get_by_role("img", name=re.compile(r"^Map of 40 images"))
    expect(canvas).to_have_accessible_name("Map of 40 images, coloured by label")
    page.get_by_label("Colour by").select_option("uncertainty")
    expect(canvas).to_have_accessible_name(re.compile("coloured by uncertainty"))
    lasso_left_of(page, canvas, cut)
    expect(page.get_by_role("status").filter(has_text="selected")).to_have_text(
        re.compile(rf"^{len(inside)} images selected")
    )
    screenshot(page, "dashboard-map-lasso")

    page.get_by_role("button", name="Open in the image browser").click()
    page.wait_for_url(re.compile(r"/admin/images\?ids="))
    expect(
        page.get_by_text(f"Showing the {len(inside)} images selected on the map")
    ).to_be_visible()
    thumbs = page.locator(".thumbs button")
    expect(thumbs).to_have_count(len(inside))
    shown = {int(re.search(r"\d+", thumbs.nth(n).get_attribute("aria-label")).group())
             for n in range(len(inside))}  # fmt: skip
    assert shown == inside
