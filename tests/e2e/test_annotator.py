"""The annotator view in a real browser: keyboard labeling, undo, reload, offline labels."""

from __future__ import annotations

import statistics
import time

import pytest

from labeling.annotations.models import Annotation, LeaseLog
from labeling.images.models import Image
from labeling.projects.models import Membership, Project
from labeling.projects.services import project_label_rename, project_update
from tests.e2e.conftest import add_digits, expect, log_in, screenshot

pytestmark = pytest.mark.django_db(transaction=True)

# Records, in the page, how long each keypress takes to put the next image on screen: from
# keydown to the first animation frame after the <img> changed (a frame is what the eye sees).
LATENCY_PROBE = """
window.__switches = [];
let pressedAt = null;
let shown = null;
window.addEventListener("keydown", (event) => {
  if (/^[0-9a-y]$/.test(event.key) && event.key !== "s") pressedAt = performance.now();
}, true);
new MutationObserver(() => {
  const img = document.querySelector("img[data-image-id]");
  const id = img ? img.dataset.imageId : null;
  if (id !== shown && pressedAt !== null) {
    const start = pressedAt;
    pressedAt = null;
    requestAnimationFrame(() => window.__switches.push(performance.now() - start));
  }
  shown = id;
}).observe(document, { subtree: true, childList: true, attributes: true });
"""

IMAGE = "img[data-image-id]"


def shown_image(page) -> int:
    return int(page.get_attribute(IMAGE, "data-image-id"))


def press_and_wait_for_next(page, key: str) -> None:
    before = page.get_attribute(IMAGE, "data-image-id")
    page.keyboard.press(key)
    page.wait_for_function(
        """before => {
            const img = document.querySelector("img[data-image-id]");
            return !img || img.dataset.imageId !== before;
        }""",
        arg=before,
    )


def pending(page) -> int:
    return int(page.get_by_test_id("pending-count").inner_text())


def wait_until_sent(page, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        """() => document.querySelector("[data-testid=pending-count]")?.textContent === "0" """,
        timeout=timeout_ms,
    )


def truth_of(image_id: int, truth: dict[str, str]) -> str:
    return truth[Image.objects.get(pk=image_id).original_name]


def test_the_login_page_says_when_the_password_is_wrong_then_goes_where_asked(
    page, console, bob, project
):
    console.allow(r"status of 400 .*/api/auth/login/")  # the wrong password, on purpose
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_url(f"**/login?next=%2Fprojects%2F{project.id}%2Flabel")
    page.get_by_label("Username").fill("bob")
    page.get_by_label("Password").fill("not his password")
    page.keyboard.press("Enter")
    expect(page.get_by_role("alert")).to_have_text("wrong username or password")
    page.get_by_label("Password").fill("correct horse battery")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/projects/{project.id}/label")
    expect(page.get_by_text("Nothing is left for you to label")).to_be_visible()


def test_annotator_labels_ten_images_by_keyboard_undoes_one_and_a_reload_loses_nothing(
    page, alice, bob, project
):
    truth = add_digits(project, alice, 24)
    page.add_init_script(LATENCY_PROBE)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector(IMAGE)
    expect(page.get_by_role("button", name="7")).to_be_visible()  # the class buttons, with keys
    expect(page.locator("kbd", has_text="0").first).to_be_visible()

    pressed: dict[int, str] = {}
    for n in range(10):
        if n == 5:
            # Reload right after a keypress: the last labels may not have been sent yet.
            page.reload()
            page.wait_for_selector(IMAGE)
        image_id = shown_image(page)
        assert image_id not in pressed, "an image labeled before the reload came back"
        label = truth_of(image_id, truth)
        pressed[image_id] = label
        press_and_wait_for_next(page, label)

    # Undo (Z) brings the last image back; another key changes its label.
    last_id = list(pressed)[-1]
    page.keyboard.press("z")
    page.wait_for_selector(f'img[data-image-id="{last_id}"]')
    expect(page.get_by_text("Changing the label")).to_be_visible()
    changed = "0" if pressed[last_id] != "0" else "1"
    press_and_wait_for_next(page, changed)
    pressed[last_id] = changed

    page.keyboard.press("?")
    expect(page.get_by_role("dialog", name="Keyboard")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    wait_until_sent(page)
    assert page.get_by_test_id("session-count").inner_text() == "10"
    screenshot(page, "annotator")

    mine = Annotation.objects.filter(annotator=bob).order_by("created_at", "id")
    latest = {a.image_id: a.label for a in mine}  # each image's latest label counts
    assert latest == pressed
    assert len(latest) == 10
    # The change is a second row if the first label had gone out, else the first one changed.
    assert mine.count() in (10, 11)

    switches = page.evaluate("window.__switches")  # since the reload: five labels, one change
    assert len(switches) >= 5
    # Prefetched and decoded: the next image is on screen within a frame or two of the key.
    assert statistics.median(switches) < 100, switches
    assert sorted(switches)[int(len(switches) * 0.9) - 1] < 100, switches


def test_labels_made_while_the_network_is_down_all_arrive_when_it_is_back(
    page, console, alice, bob, project
):
    truth = add_digits(project, alice, 16)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector(IMAGE)
    page.wait_for_function(
        "() => Number(document.querySelector('[data-testid=ready-count]').textContent) >= 6"
    )

    console.allow(r"Failed to load resource: net::ERR_FAILED")
    page.route("**/api/**", lambda route: route.abort())
    pressed: dict[int, str] = {}
    for _ in range(5):
        image_id = shown_image(page)
        pressed[image_id] = truth_of(image_id, truth)
        press_and_wait_for_next(page, pressed[image_id])

    assert pending(page) == 5
    expect(page.get_by_text("The server cannot be reached")).to_be_visible()
    assert Annotation.objects.filter(annotator=bob).count() == 0

    # The tab gets the focus back while offline: re-reading the project fails, and the page
    # stays as it is, still labeling.
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    image_id = shown_image(page)
    pressed[image_id] = truth_of(image_id, truth)
    press_and_wait_for_next(page, pressed[image_id])
    assert pending(page) == 6

    page.unroute("**/api/**")
    wait_until_sent(page)
    arrived = dict(Annotation.objects.filter(annotator=bob).values_list("image_id", "label"))
    assert arrived == pressed


def test_an_admin_renames_a_class_while_an_annotator_labels_and_the_page_says_so(
    page, alice, bob, project
):
    truth = add_digits(project, alice, 12)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector(IMAGE)
    image_id = shown_image(page)
    labeled = {image_id: truth_of(image_id, truth)}
    press_and_wait_for_next(page, labeled[image_id])  # on digits, key 3 means "3"

    project_label_rename(project=project, old="3", new="three")
    project = Project.objects.get(pk=project.pk)
    project_update(project=project, labels=[*project.labels, "junk"])
    page.evaluate("window.dispatchEvent(new Event('focus'))")  # the tab is looked at again

    notice = page.get_by_test_id("class-change")
    expect(notice).to_contain_text("“3” is now “three”")
    expect(notice).to_contain_text("New: “junk”")
    expect(page.get_by_role("button", name="three")).to_be_visible()
    # Keys now go by position (1 = "0", ..., 4 = "three"): a digit key is paused, not sent.
    image_id = shown_image(page)
    page.keyboard.press("1")
    expect(page.get_by_role("status")).to_contain_text("Class keys are paused")
    assert shown_image(page) == image_id
    screenshot(page, "annotator-class-change")

    page.keyboard.press("Escape")
    expect(notice).to_have_count(0)
    keys = "1234567890"
    labels = Project.objects.get(pk=project.pk).labels
    for _ in range(3):
        image_id = shown_image(page)
        digit = truth_of(image_id, truth)
        labeled[image_id] = "three" if digit == "3" else digit
        press_and_wait_for_next(page, keys[labels.index(labeled[image_id])])
    wait_until_sent(page)
    stored = dict(Annotation.objects.filter(annotator=bob).values_list("image_id", "label"))
    # The label sent before the rename was renamed with its class.
    assert stored == {image: "three" if label == "3" else label for image, label in labeled.items()}


def test_an_annotator_removed_from_the_project_is_told_so_on_the_open_page(
    page, console, alice, bob, project
):
    add_digits(project, alice, 4)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector(IMAGE)

    console.allow(r"status of 404 .*/api/projects/")  # the re-read, refused on purpose
    console.allow(r"status of 404 .*/api/tasks/\d+/release/")  # leaving: bob's leases, gone too
    Membership.objects.filter(project=project, user=bob).delete()
    page.evaluate("window.dispatchEvent(new Event('focus'))")
    gone = page.get_by_text("This project does not exist, or you are not a member.")
    expect(gone).to_be_visible()
    expect(page.locator(IMAGE)).to_have_count(0)


def held_by(user) -> set[int]:
    return set(Image.objects.filter(leased_to=user).values_list("id", flat=True))


def wait_for_db(check, what: str, timeout_s: float = 15.0) -> None:
    """Poll the database (the page may be gone) until `check()` is true."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_leaving_the_annotator_or_closing_its_tab_gives_the_leases_back(page, alice, bob, project):
    add_digits(project, alice, 20)
    log_in(page, "bob")
    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector(IMAGE)
    wait_for_db(lambda: len(held_by(bob)) >= 8, "the look-ahead's leases")
    held = held_by(bob)

    page.get_by_role("link", name="All projects", exact=True).click()  # another page of the app
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    wait_for_db(lambda: not held_by(bob), "the leases to be given back")
    # Given back, not skipped: the images may come to bob again, and to everyone else now.
    logged = LeaseLog.objects.filter(image_id__in=held, user=bob)
    assert logged.filter(ended_at__isnull=False, skipped=False).count() == len(held)
    assert not logged.filter(skipped=True).exists()

    page.goto(f"/projects/{project.id}/label")
    page.wait_for_selector(IMAGE)
    wait_for_db(lambda: len(held_by(bob)) >= 8, "the look-ahead's leases again")
    page.close(run_before_unload=True)  # the tab closes: its requests must outlive it
    wait_for_db(lambda: not held_by(bob), "a closed tab's leases to be given back")
