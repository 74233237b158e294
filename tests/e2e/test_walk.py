"""Issue 28's browser walk, as tests: every page on a phone, the dark theme, and findings 2-8.

(cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_walk.py -q
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from django.test import Client

from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning.models import RunStatus, RunTrigger, TrainingRun
from labeling.projects.models import Membership, Project, Role
from tests.e2e.conftest import add_digits, expect, log_in, screenshot
from tests.factories import ProjectFactory, model_version

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}
DASHBOARD_TABS = [
    "overview",
    "review",
    "model",
    "images",
    "upload",
    "members",
    "export",
    "webhooks",
    "settings",
]

# Nothing wider than the window, and every visible control inside it, except controls in a
# box that scrolls sideways on its own (a wide table).
FITS = """() => {
    const root = document.documentElement;
    const out = [];
    const controls = "button, a[href], input, select, textarea, summary";
    for (const el of document.querySelectorAll(controls)) {
        const box = el.getBoundingClientRect();
        if (box.width === 0 || box.height === 0 || el.closest(".visually-hidden")) continue;
        let scroller = el.parentElement;
        while (scroller && scroller !== document.body) {
            const x = getComputedStyle(scroller).overflowX;
            if (x === "auto" || x === "scroll") break;
            scroller = scroller.parentElement;
        }
        if (scroller && scroller !== document.body) continue;
        if (box.left < -1 || box.right > root.clientWidth + 1) out.push(el.outerHTML.slice(0, 80));
    }
    return {scroll: root.scrollWidth, client: root.clientWidth, outside: out};
}"""


def assert_fits(page, where: str) -> None:
    page.wait_for_load_state("networkidle")
    fit = page.evaluate(FITS)
    assert fit["scroll"] <= fit["client"], (where, fit)
    assert fit["outside"] == [], (where, fit["outside"])


def seed(project: Project, admin) -> None:
    add_digits(project, admin, 12, labeled=True)
    add_digits(project, admin, 8, start=12)
    model_version(project, 1, metrics={"accuracy": 1.0, "n_val": 2}, labels_used=12, active=True)


def test_login_projects_annotator_and_404_fit_a_phone(page, console, alice, project):
    console.allow(r"status of 404 .*/admin/nonsense")  # the not-found page, on purpose
    page.set_viewport_size(PHONE)
    seed(project, alice)
    page.goto("/login")
    assert_fits(page, "login")
    log_in(page, "alice")
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    assert_fits(page, "projects")
    page.goto(f"/projects/{project.id}/label")
    expect(page.locator("img[data-image-id]")).to_be_visible()
    assert_fits(page, "annotator")
    page.goto(f"/projects/{project.id}/admin/nonsense")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    assert_fits(page, "404")


def test_every_dashboard_tab_fits_a_phone_without_sideways_scrolling(page, alice, project):
    page.set_viewport_size(PHONE)
    seed(project, alice)
    log_in(page, "alice")
    for tab in DASHBOARD_TABS:
        page.goto(f"/projects/{project.id}/admin/{tab}")
        current = page.get_by_role("navigation", name="Dashboard sections").locator(
            "[aria-current]"
        )
        expect(current).to_have_attribute("href", re.compile(f"/{tab}$"))
        expect(page.locator(".tab-body > *").first).to_be_visible()
        if tab == "images":
            page.locator(".thumbs button").first.click()
            expect(page.get_by_role("heading", name="Annotations")).to_be_visible()
        assert_fits(page, tab)
    screenshot(page, "walk-phone-settings")


def test_the_annotator_on_a_phone_shows_the_image_above_every_class_button(page, bob, project):
    page.set_viewport_size(PHONE)
    add_digits(project, bob, 6)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    image = page.locator("img[data-image-id]")
    expect(image).to_be_visible()
    buttons = page.get_by_role("group", name="Classes").get_by_role("button")
    expect(buttons).to_have_count(10)
    image_box = image.bounding_box()
    for button in buttons.all():
        box = button.bounding_box()
        assert box["y"] >= image_box["y"] + image_box["height"] - 1, (box, image_box)
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    # The context strip: progress, the next round, the model, the file; zoom and contrast.
    expect(page.get_by_test_id("context-progress")).to_contain_text("0 of 6 labeled")
    expect(page.get_by_test_id("context-next-round")).to_contain_text("next model round in")
    expect(page.get_by_test_id("context-model")).to_have_text("no model yet")
    expect(page.get_by_test_id("context-file")).to_have_text(re.compile(r"^digit-\d{4}\.png$"))
    page.get_by_role("button", name=re.compile("^Zoom")).click()
    expect(image).to_have_attribute("style", re.compile(r"scale\(2\)"))
    page.get_by_role("button", name="Contrast").click()
    expect(image).to_have_attribute("style", re.compile(r"contrast"))
    screenshot(page, "walk-phone-annotator")
    # the keys and the buttons work there
    first = image.get_attribute("data-image-id")
    buttons.first.click()
    expect(image).not_to_have_attribute("data-image-id", first)


def test_the_dark_theme_follows_the_system_setting(browser, live_server, alice, project):
    add_digits(project, alice, 4)

    def background(scheme: str) -> tuple[str, str]:
        context = browser.new_context(color_scheme=scheme, base_url=live_server.url)
        page = context.new_page()
        log_in(page, "alice")
        page.goto(f"/projects/{project.id}/admin/overview")
        expect(page.get_by_role("heading", name="Images by status")).to_be_visible()
        colors = page.evaluate(
            """() => [getComputedStyle(document.documentElement).backgroundColor,
                      getComputedStyle(document.querySelector(".card")).color]"""
        )
        screenshot(page, f"walk-theme-{scheme}")
        context.close()
        return colors

    def luminance(css: str) -> float:
        r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    light_bg, light_text = background("light")
    dark_bg, dark_text = background("dark")
    assert luminance(light_bg) > 200 and luminance(light_text) < 60
    assert luminance(dark_bg) < 40 and luminance(dark_text) > 200


def test_projects_list_searches_sorts_shows_progress_and_keeps_long_or_bidi_names_in_place(
    page, alice, project
):
    """Finding 2: a 200-character name made the page millions of pixels wide; a right-to-left
    override in a name reordered the text after it; there was no search, sort or progress."""
    add_digits(project, alice, 4, labeled=True)
    add_digits(project, alice, 4, start=4)
    long_name = ProjectFactory(name="Long" + "x" * 196, slug="long")
    tricky = ProjectFactory(name="Cats \u202egod\u202c", slug="tricky")
    for other in (long_name, tricky):
        Membership.objects.create(project=other, user=alice, role=Role.ADMIN)
    log_in(page, "alice")
    assert_fits(page, "projects, desktop")
    cards = page.locator(".project-card")
    expect(cards).to_have_count(3)
    expect(cards.first.locator("h2")).to_have_text(re.compile(r"^Cats"))  # by name
    digits = cards.filter(has_text="Digits")
    expect(digits.get_by_role("progressbar")).to_have_attribute("value", "50")
    expect(digits).to_contain_text("4 labeled (50%)")
    isolated = page.evaluate(
        """() => [...document.querySelectorAll(".project-card h2")].every(h =>
            h.querySelector("bdi") && getComputedStyle(h.querySelector("bdi")).unicodeBidi
                === "isolate")"""
    )
    assert isolated
    page.get_by_label("Sort by").select_option("images")
    expect(cards.first.locator("h2")).to_have_text("Digits")
    page.get_by_role("searchbox").fill("long")
    expect(cards).to_have_count(1)
    expect(page.get_by_test_id("project-count")).to_have_text("1 of 3 projects")
    expect(page).to_have_url(re.compile(r"q=long"))
    page.set_viewport_size(PHONE)
    assert_fits(page, "projects, phone, long name")


def test_the_model_tab_leads_with_the_interval_and_warns_of_few_held_out_labels(
    page, alice, project
):
    """Finding 3: "accuracy 100.0% on 2 held-out labels" in bold."""
    model_version(project, 1, metrics={"accuracy": 1.0, "n_val": 2}, labels_used=12, active=True)
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/model")
    expect(page.get_by_test_id("accuracy-range")).to_have_text("34\u2013100%")
    expect(page.get_by_test_id("active-model")).to_contain_text("measured 100.0% on 2 held-out")
    expect(page.get_by_test_id("few-held-out")).to_contain_text("Only 2 held-out labels")
    bold = page.get_by_test_id("active-model").locator("strong").all_inner_texts()
    assert "100.0%" not in bold


def test_most_uncertain_first_is_sorted_by_uncertainty(page, alice, project):
    """Finding 4: the first image showed 0.505 while 12 images were at 0.6 or more."""
    add_digits(project, alice, 8)
    scores = [0.505, 0.9, 0.61, 0.3, 0.75, 0.2, 0.66, 0.55]
    for n, image in enumerate(Image.objects.filter(project=project).order_by("id")):
        # the queue's priority deliberately disagrees with the uncertainty
        image.uncertainty, image.priority = scores[n], 10.0 - n
        image.predicted_label = str(n)
        image.save(update_fields=["uncertainty", "priority", "predicted_label"])
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/images?show=uncertain")
    thumbs = page.locator(".thumbs button")
    expect(thumbs).to_have_count(8)
    shown = [float(t.get_attribute("data-uncertainty")) for t in thumbs.all()]
    assert shown == sorted(scores, reverse=True)


def test_a_skipped_image_does_not_come_back_and_is_released_once(page, bob, project):
    """Finding 6: a skipped image kept coming back and was released again and again."""
    project.exploration_fraction = 0.0
    project.save()
    add_digits(project, bob, 14)
    releases: list[str] = []
    page.on("request", lambda r: releases.append(r.url) if "/release/" in r.url else None)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    image = page.locator("img[data-image-id]")
    expect(image).to_be_visible()
    skipped = image.get_attribute("data-image-id")
    page.keyboard.press("s")
    seen = []
    for _ in range(12):
        expect(image).not_to_have_attribute("data-image-id", seen[-1] if seen else skipped)
        seen.append(image.get_attribute("data-image-id"))
        page.keyboard.press("1")
    page.wait_for_load_state("networkidle")
    assert skipped not in seen
    assert len(releases) == 1, releases


def test_the_image_browser_keeps_filters_in_the_url_counts_searches_and_moves_by_keys(
    page, alice, bob, project
):
    """Finding 7: filters lost on reload, no count, no search, no keys, no predicted class on
    thumbnails, and "Resolve" to label an unlabeled image."""
    truth = add_digits(project, alice, 10)
    for image in Image.objects.filter(project=project):
        image.predicted_label = truth[image.original_name]
        image.save(update_fields=["predicted_label"])
    first = Image.objects.filter(project=project).order_by("id").first()
    annotation_submit(image=first, user=bob, label="1", client_id=uuid.uuid4())
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/images")
    page.get_by_label("Show").select_option("unlabeled")
    expect(page).to_have_url(re.compile(r"show=unlabeled"))
    expect(page.get_by_test_id("match-count")).to_contain_text("9 images match")
    page.reload()
    expect(page.get_by_label("Show")).to_have_value("unlabeled")
    expect(page.locator(".thumbs li")).to_have_count(9)
    expect(page.get_by_test_id("thumb-predicted").first).to_contain_text("\u2192")
    page.get_by_role("searchbox").fill("digit-0003")
    expect(page.get_by_test_id("match-count")).to_contain_text("1 image match")
    expect(page).to_have_url(re.compile(r"q=digit-0003"))
    page.get_by_role("searchbox").fill("")
    expect(page.locator(".thumbs li")).to_have_count(9)
    thumbs = page.locator(".thumbs button")
    thumbs.first.click()
    expect(thumbs.first).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("ArrowRight")
    expect(thumbs.nth(1)).to_have_attribute("aria-pressed", "true")
    expect(page).to_have_url(re.compile(r"image=\d+"))
    detail = page.get_by_role("complementary", name="Image details")
    expect(detail.get_by_role("button", name="Label it")).to_be_visible()
    expect(detail.get_by_role("button", name="Resolve")).to_have_count(0)


def test_a_queued_run_says_why_it_waits(page, alice, project):
    """Finding 5: 58 s at "queued · 0%" while the worker served another project."""
    other = ProjectFactory(name="Other", slug="other")
    TrainingRun.objects.create(project=other, trigger=RunTrigger.MANUAL, status=RunStatus.RUNNING)
    TrainingRun.objects.create(project=project, trigger=RunTrigger.MANUAL)
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/model")
    wait = page.get_by_test_id("run-wait")
    expect(wait).to_have_attribute("data-reason", "worker_busy")
    expect(wait).to_contain_text("busy with 1 run of other projects")
    expect(wait).to_contain_text("place in line: 1")
    assert "Other" not in wait.inner_text()


def test_admin_screens_export_webhooks_members_404_and_django_admin(
    page, console, alice, staff, project
):
    """Finding 8: no Export or Webhooks screen, members hidden in Settings, unknown URLs
    showed the Overview, the Django admin showed none of LabelLoop's data."""
    console.allow(r"status of 404 .*/admin/nonsense")  # the not-found page, on purpose
    add_digits(project, alice, 3, labeled=True)
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/export")
    page.get_by_label("Only images with a consensus label").check()
    link = page.get_by_test_id("export-link")
    expect(link).to_have_attribute("href", re.compile(r"format=csv&labeled=true"))
    with page.expect_download() as download:
        link.click()
    assert b"digit-0000.png" in Path(download.value.path()).read_bytes()
    page.goto(f"/projects/{project.id}/admin/webhooks")
    page.get_by_label("Endpoint URL").fill("https://93.184.216.34/ll")  # public, no DNS
    page.get_by_role("button", name="Add webhook").click()
    expect(page.get_by_test_id("webhook-secret")).to_be_visible()
    expect(page.locator(".webhook")).to_contain_text("93.184.216.34/ll")
    page.goto(f"/projects/{project.id}/admin/members")
    expect(page.get_by_role("heading", name="Members")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("bob"))).to_be_visible()
    response = page.goto(f"/projects/{project.id}/admin/nonsense")
    assert response.status == 404
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_role("heading", name="Images by status")).to_have_count(0)
    client = Client()
    client.force_login(staff)
    assert "digit-0000.png" in client.get("/admin/images/image/").content.decode()
