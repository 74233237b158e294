"""Grid labeling in a real browser (issue 28): the annotator's grid mode shows a page of images
the model is sure of, the proposed class on top; Enter accepts the page, a class key changes
the image under the cursor, the labels arrive exactly once through a lost network, a lasso on
the map opens its images as a grid, and a phone shows the page without scrolling sideways.

    (cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_grid.py -q
"""

from __future__ import annotations

import io
import itertools
import re
from collections import Counter

import pytest

from labeling.annotations.models import Annotation, LeaseLog
from labeling.images.models import Image
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import file_source
from labeling.learning.embedding_map import embedding_map_build
from tests.e2e.conftest import add_digits, digit_png, expect, log_in, screenshot
from tests.e2e.test_annotator import press_and_wait_for_next, shown_image
from tests.e2e.test_similar import embed_by_pixels, lasso_left_of
from tests.factories import model_version

pytestmark = pytest.mark.django_db(transaction=True)

GRID = "[data-testid=grid]"
READY = '[data-testid=grid][data-ready="true"]'
CELL = "[data-testid=grid-cell]"
PROPOSED = "7"


def confident_digits(project, alice, sevens: int = 21, ones: int = 3) -> dict[int, str]:
    """Real digits, ``sevens`` 7s and ``ones`` 1s, that an active model (its predictions
    written as a scoring run would) calls "7", surely: the 1s a little less surely, so they
    close a page. Suggestions on, no exploration. Returns image id -> true label."""
    limits = ingest_limits()
    picks = [7 + 10 * k for k in range(sevens)] + [1 + 10 * k for k in range(ones)]
    sources = [
        file_source(
            io.BytesIO(digit_png(n)[0]), name=f"digit-{n:04d}.png", max_bytes=limits.max_bytes
        )
        for n in picks
    ]
    images_ingest(project=project, user=alice, sources=sources)
    model_version(project, 1, active=True)
    project.show_suggestions = True
    project.exploration_fraction = 0.0  # every cell from the confident page, none at random
    project.save(update_fields=["show_suggestions", "exploration_fraction"])
    truth = {}
    for n, image in zip(picks, Image.objects.filter(project=project).order_by("id"), strict=True):
        truth[image.pk] = digit_png(n)[1]
        image.predicted_label = PROPOSED
        image.confidence = (0.99 if truth[image.pk] == PROPOSED else 0.95) - len(truth) * 0.001
        image.uncertainty = 1 - image.confidence
        image.save(update_fields=["predicted_label", "confidence", "uncertainty"])
    assert Counter(truth.values()) == {"7": sevens, "1": ones}
    return truth


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


def wait_until_sent(page, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(
        """() => document.querySelector("[data-testid=pending-count]")?.textContent === "0" """,
        timeout=timeout_ms,
    )


def bobs_labels(bob) -> dict[int, str]:
    return dict(Annotation.objects.filter(annotator=bob).values_list("image_id", "label"))


def test_enter_accepts_the_page_the_next_one_follows_and_leaving_gives_its_leases_back(
    page, alice, bob, project
):
    confident_digits(project, alice, sevens=29, ones=3)
    log_in(page, "bob")
    shown = open_grid(page, project)
    assert page.get_attribute(GRID, "data-proposed") == PROPOSED
    assert len(shown) == 24
    assert {cell["label"] for cell in shown} == {PROPOSED}
    names = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
    assert all(cell["name"] == names[cell["id"]] for cell in shown)
    assert shown[0]["cursor"]
    # While the page shows, the next one is leased ahead (and decoded): the other 8 images.
    held = Image.objects.filter(project=project, leased_to=bob)
    for _ in range(100):
        if held.count() == 32:
            break
        page.wait_for_timeout(100)
    assert held.count() == 32

    page.keyboard.press("Enter")
    # The next page: the 8 images left, none of the first page's, shown from the page ahead
    # (without waiting for the first page's labels to arrive).
    page.wait_for_function(
        """n => document.querySelectorAll('[data-testid=grid][data-ready="true"] """
        """[data-testid=grid-cell]').length === n""",
        arg=8,
        timeout=60_000,
    )
    second = {cell["id"] for cell in cells(page)}
    assert second.isdisjoint(cell["id"] for cell in shown)
    wait_until_sent(page)
    assert page.get_by_test_id("session-count").inner_text() == str(len(shown))
    rows = Annotation.objects.filter(annotator=bob)
    assert bobs_labels(bob) == {cell["id"]: PROPOSED for cell in shown}
    assert rows.count() == len(shown)
    assert set(rows.values_list("view", flat=True)) == {"grid"}
    # Each label's time is the page's time on screen shared equally.
    assert len(set(rows.values_list("duration_ms", flat=True))) == 1
    assert Image.objects.filter(pk__in=second, leased_to=bob).count() == 8

    page.get_by_role("link", name="All projects", exact=True).click()  # leaving the page
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    for _ in range(100):  # the releases are on their way (up to 10 s)
        if not Image.objects.filter(pk__in=second, leased_to=bob).exists():
            break
        page.wait_for_timeout(100)
    assert not Image.objects.filter(pk__in=second, leased_to=bob).exists()
    # Given back, not skipped: the images may come to bob again.
    logged = LeaseLog.objects.filter(image_id__in=second, user=bob)
    assert logged.filter(ended_at__isnull=False, skipped=False).count() == 8
    assert not logged.filter(skipped=True).exists()


def test_a_class_key_corrects_the_image_under_the_cursor_or_a_selection(page, alice, bob, project):
    truth = confident_digits(project, alice)
    log_in(page, "bob")
    shown = open_grid(page, project)
    assert len(shown) == len(truth)
    columns = page.evaluate(
        """() => getComputedStyle(document.querySelector("[data-testid=grid]"))
            .gridTemplateColumns.split(" ").length"""
    )
    assert columns == 6  # 4 rows of 6 on a desktop
    ones = [n for n, cell in enumerate(shown) if truth[cell["id"]] == "1"]
    assert ones == [21, 22, 23]  # the model's least sure close the page

    # The arrows move the cursor to the first 1; its key corrects it.
    for key in ["ArrowDown"] * (ones[0] // columns) + ["ArrowRight"] * (ones[0] % columns):
        page.keyboard.press(key)
    assert [cell["cursor"] for cell in cells(page)].index(True) == ones[0]
    page.keyboard.press("1")
    cell = page.locator(CELL).nth(ones[0])
    expect(cell).to_have_attribute("data-label", "1")
    expect(cell.locator(".grid-mark")).to_be_visible()  # marked as changed

    # A click moves the cursor, Space selects it, Shift-click selects another: one key for both.
    page.locator(CELL).nth(ones[1]).click()
    page.keyboard.press("Space")
    page.locator(CELL).nth(ones[2]).click(modifiers=["Shift"])
    page.keyboard.press("1")
    for n in ones:
        expect(page.locator(CELL).nth(n)).to_have_attribute("data-label", "1")
    expect(page.locator(CELL).nth(ones[0] - 1)).to_have_attribute("data-label", PROPOSED)
    screenshot(page, "annotator-grid")

    page.keyboard.press("?")
    keys = page.get_by_role("dialog", name="Keyboard").get_by_test_id("grid-keys")
    expect(keys).to_contain_text("Accept the page")
    page.keyboard.press("Escape")

    page.keyboard.press("Enter")
    wait_until_sent(page)
    assert bobs_labels(bob) == truth  # the 1s corrected, the 7s as proposed


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

    page.unroute_all(behavior="wait")  # a handler still losing an answer finishes first
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
    lasso_left_of(page, canvas, cut)
    expect(page.get_by_role("status").filter(has_text="selected")).to_have_text(
        re.compile(rf"^{len(inside)} images selected")
    )
    page.get_by_role("button", name="Label as grid").click()
    page.wait_for_url(re.compile(r"/label\?mode=grid&ids="))
    page.wait_for_selector(READY)
    assert {cell["id"] for cell in cells(page)} == inside


def test_the_single_view_offers_a_waiting_page_every_25_labels(page, alice, bob, project):
    truth = confident_digits(project, alice, sevens=40, ones=3)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    status = page.get_by_role("status").filter(has_text="press G")
    for n in range(25):
        assert status.count() == 0, f"offered after {n} labels"
        press_and_wait_for_next(page, truth[shown_image(page)])
    expect(status).to_contain_text('"7" images')
    wait_until_sent(page)
    # The question leased nothing: what bob holds is the single view's own look-ahead.
    held = set(Image.objects.filter(leased_to=bob).values_list("id", flat=True))
    single = set(LeaseLog.objects.filter(user=bob).values_list("image_id", flat=True))
    assert held <= single and len(single) <= 25 + 10
    page.keyboard.press("g")
    page.wait_for_selector(READY)
    assert page.get_attribute(GRID, "data-proposed") == PROPOSED


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
    confident_digits(project, alice, sevens=9, ones=3)
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
