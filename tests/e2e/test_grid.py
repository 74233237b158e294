"""Grid labeling in a real browser (issue 28): the annotator's grid mode shows a page of images
the model is sure of, the proposed class on top; Enter accepts the page, a class key changes
the image under the cursor, the labels arrive exactly once through a lost network, a lasso on
the map opens its images as a grid, and a phone shows the page without scrolling sideways.

    (cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_grid.py -q
"""

from __future__ import annotations

import itertools
import re
from collections import Counter

import pytest

from labeling.annotations.models import Annotation
from labeling.images.models import Image
from labeling.learning.embedding_map import embedding_map_build
from tests.e2e.conftest import add_digits, expect, log_in, screenshot
from tests.e2e.test_similar import MAP_SIZE, drawn_at, embed_by_pixels
from tests.factories import model_version

pytestmark = pytest.mark.django_db(transaction=True)

GRID = "[data-testid=grid]"
READY = '[data-testid=grid][data-ready="true"]'
CELL = "[data-testid=grid-cell]"
PROPOSED = "7"


def confident_digits(project, alice, count: int = 30) -> None:
    """``count`` digits that an active model (predictions written as a scoring run would)
    calls "7", each with a different confidence, suggestions on: a confident page for a grid."""
    add_digits(project, alice, count)
    model_version(project, 1, active=True)
    project.show_suggestions = True
    project.exploration_fraction = 0.0  # every cell from the confident page, none at random
    project.save(update_fields=["show_suggestions", "exploration_fraction"])
    for n, image in enumerate(Image.objects.filter(project=project).order_by("id")):
        image.predicted_label = PROPOSED
        image.confidence = 0.99 - n * 0.001
        image.uncertainty = 1 - image.confidence
        image.save(update_fields=["predicted_label", "confidence", "uncertainty"])


def open_grid(page, project, query: str = "") -> list[dict]:
    page.goto(f"/projects/{project.id}/label?mode=grid{query}")
    page.wait_for_selector(READY)
    return cells(page)


def cells(page) -> list[dict]:
    return page.eval_on_selector_all(
        CELL,
        """cells => cells.map(c => ({id: Number(c.dataset.imageId), name: c.dataset.name,
            label: c.dataset.label, cursor: c.dataset.cursor === "true"}))""",
    )


def wait_until_sent(page, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        """() => document.querySelector("[data-testid=pending-count]")?.textContent === "0" """,
        timeout=timeout_ms,
    )


def bobs_labels(bob) -> dict[int, str]:
    return dict(Annotation.objects.filter(annotator=bob).values_list("image_id", "label"))


def test_enter_accepts_the_page_and_each_label_is_recorded_as_from_the_grid(
    page, alice, bob, project
):
    confident_digits(project, alice)
    log_in(page, "bob")
    shown = open_grid(page, project)
    assert page.get_attribute(GRID, "data-proposed") == PROPOSED
    assert 4 <= len(shown) <= 24
    assert {cell["label"] for cell in shown} == {PROPOSED}
    names = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
    assert all(cell["name"] == names[cell["id"]] for cell in shown)
    assert shown[0]["cursor"]
    screenshot(page, "annotator-grid")

    page.keyboard.press("Enter")
    wait_until_sent(page)
    assert page.get_by_test_id("session-count").inner_text() == str(len(shown))
    rows = Annotation.objects.filter(annotator=bob)
    assert bobs_labels(bob) == {cell["id"]: PROPOSED for cell in shown}
    assert rows.count() == len(shown)
    assert set(rows.values_list("view", flat=True)) == {"grid"}
    # Each label's time is the page's time on screen shared equally.
    assert len(set(rows.values_list("duration_ms", flat=True))) == 1


def test_a_class_key_changes_the_image_under_the_cursor_and_a_selection_at_once(
    page, alice, bob, project
):
    confident_digits(project, alice)
    log_in(page, "bob")
    shown = open_grid(page, project)
    columns = page.evaluate(
        """() => getComputedStyle(document.querySelector("[data-testid=grid]"))
            .gridTemplateColumns.split(" ").length"""
    )
    assert columns == 6  # 4 rows of 6 on a desktop
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    cursor = columns + 1
    assert [cell["cursor"] for cell in cells(page)].index(True) == cursor
    page.keyboard.press("1")
    cell = page.locator(CELL).nth(cursor)
    expect(cell).to_have_attribute("data-label", "1")
    expect(cell.locator(".grid-mark")).to_be_visible()  # marked as changed

    # A click moves the cursor; Space and Shift-click select; a class key labels the selection.
    page.locator(CELL).nth(0).click()
    page.keyboard.press("Space")
    page.locator(CELL).nth(2).click(modifiers=["Shift"])
    page.keyboard.press("2")
    expect(page.locator(CELL).nth(0)).to_have_attribute("data-label", "2")
    expect(page.locator(CELL).nth(2)).to_have_attribute("data-label", "2")
    expect(page.locator(CELL).nth(1)).to_have_attribute("data-label", PROPOSED)

    page.keyboard.press("?")
    keys = page.get_by_role("dialog", name="Keyboard").get_by_test_id("grid-keys")
    expect(keys).to_contain_text("Accept the page")
    page.keyboard.press("Escape")

    page.keyboard.press("Enter")
    wait_until_sent(page)
    expected = {c["id"]: PROPOSED for c in shown}
    expected[shown[cursor]["id"]] = "1"
    expected[shown[0]["id"]] = expected[shown[2]["id"]] = "2"
    assert bobs_labels(bob) == expected


def test_a_page_accepted_while_answers_are_lost_arrives_exactly_once(
    page, console, alice, bob, project
):
    confident_digits(project, alice)
    log_in(page, "bob")
    shown = open_grid(page, project)

    # The requests reach the server, their answers never come back: the outbox sends again.
    console.allow(r"Failed to load resource: net::ERR_FAILED")
    lost = []

    def lose_the_answer(route) -> None:
        route.fetch()
        lost.append(route.request.url)
        route.abort()

    page.route("**/api/annotations/**", lose_the_answer)
    page.keyboard.press("Enter")
    expect(page.get_by_text("The server cannot be reached")).to_be_visible()
    assert int(page.get_by_test_id("pending-count").inner_text()) == len(shown)
    assert lost

    page.unroute("**/api/annotations/**")
    wait_until_sent(page)
    per_image = Counter(Annotation.objects.filter(annotator=bob).values_list("image_id", flat=True))
    assert per_image == {cell["id"]: 1 for cell in shown}


def test_a_lasso_on_the_map_opens_its_images_as_a_grid_to_label(page, alice, project):
    add_digits(project, alice, 40)
    embed_by_pixels(project)
    points = embedding_map_build(project=project).points
    xs = sorted(points["x"])
    cut = next((a + b) / 2 for a, b in itertools.pairwise(xs[10:]) if b - a > 0.01)
    inside = {i for i, x in zip(points["id"], points["x"], strict=True) if x < cut}
    assert 5 <= len(inside) <= 24

    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/map")
    canvas = page.get_by_role("img", name=re.compile(r"^Map of 40 images"))
    box = canvas.bounding_box()
    scale = box["width"] / MAP_SIZE
    right = drawn_at(cut, 0)[0]
    corners = [(2, 2), (right, 2), (right, MAP_SIZE - 2), (2, MAP_SIZE - 2), (2, 4)]
    page.mouse.move(box["x"] + corners[0][0] * scale, box["y"] + corners[0][1] * scale)
    page.mouse.down()
    for cx, cy in corners[1:]:
        page.mouse.move(box["x"] + cx * scale, box["y"] + cy * scale, steps=5)
    page.mouse.up()
    expect(page.get_by_role("status").filter(has_text="selected")).to_have_text(
        re.compile(rf"^{len(inside)} images selected")
    )
    page.get_by_role("button", name="Label as grid").click()
    page.wait_for_url(re.compile(r"/label\?mode=grid&ids="))
    page.wait_for_selector(READY)
    assert {cell["id"] for cell in cells(page)} == inside


def test_without_suggestions_the_server_says_why_and_the_single_view_takes_over(
    page, alice, bob, project
):
    add_digits(project, alice, 6)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label?mode=grid")
    expect(page.get_by_role("status")).to_contain_text("No grid now")
    expect(page.get_by_role("status")).to_contain_text("Suggestions are off")
    page.wait_for_selector("img[data-image-id]")  # one image at a time
    expect(page.get_by_role("button", name=re.compile("^Grid"))).to_be_visible()
    assert "mode=grid" not in page.url


@pytest.mark.parametrize("width", [390, 360])
def test_a_phone_shows_the_grid_without_scrolling_sideways(page, alice, bob, project, width):
    confident_digits(project, alice, 12)
    page.set_viewport_size({"width": width, "height": 844})
    log_in(page, "bob")
    open_grid(page, project)
    overflow = page.evaluate(
        "() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]"
    )
    assert overflow[0] <= overflow[1], overflow
    box = page.locator(CELL).first.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    if width == 390:
        screenshot(page, "annotator-grid-phone")
