"""Label quality in a real browser: a reviewer works the review queue with the keyboard
(confirm, relabel, send back; at phone width too), a lost answer retried with the same
decision_id, a review someone else decided first, the overview's annotator-quality table, an
admin marking a gold question in the image browser and setting consensus and gold settings,
and an annotator who has no Review tab.

    (cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_quality.py -q
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.utils import timezone

from labeling.annotations.models import Annotation, GoldAnswer, LabelReview, ReviewState
from labeling.annotations.reviews import Suspect, reviews_open
from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning.models import RunTrigger, TrainingRun
from labeling.projects.models import Membership, Project, Role
from tests.e2e.conftest import add_digits, expect, log_in, screenshot
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = {"width": 390, "height": 844}


@pytest.fixture
def carol(project):
    """The project's reviewer."""
    user = UserFactory(username="carol")
    Membership.objects.create(project=project, user=user, role=Role.REVIEWER)
    return user


def tab(page, name: str):
    return page.get_by_role("navigation", name="Dashboard sections").get_by_role(
        "link", name=name, exact=True
    )


def labeled_by(project: Project, admin, annotator, count: int) -> list[Image]:
    """``count`` real digits, each labeled (correctly) by ``annotator``; oldest first."""
    truth = add_digits(project, admin, count)
    images = list(Image.objects.filter(project=project).order_by("id"))
    for image in images:
        annotation_submit(
            image=image, user=annotator, label=truth[image.original_name], client_id=uuid.uuid4()
        )
    for image in images:
        image.refresh_from_db()
    return images


def image_title(image: Image) -> re.Pattern[str]:
    return re.compile(rf"^Image {image.id} ")


def another(label: str) -> str:
    return "0" if label != "0" else "1"


def test_reviewer_confirms_relabels_and_sends_back_suspects_with_the_keyboard(
    page, alice, bob, carol, project
):
    images = labeled_by(project, alice, bob, 4)
    scores = [0.95, 0.85, 0.75, 0.65]  # the queue's order: likeliest error first
    opened = reviews_open(
        project=project,
        run_id=None,
        suspects=[
            Suspect(
                image_id=image.id,
                score=score,
                given_label=image.consensus_label,
                model_label=another(image.consensus_label),
                model_confidence=0.9,
            )
            for image, score in zip(images, scores, strict=True)
        ],
    )
    assert opened == 4
    first, second, third, fourth = images

    log_in(page, "carol")
    page.get_by_role("link", name="Review labels of Digits").click()
    expect(tab(page, "Review")).to_have_attribute("aria-current", "page")
    expect(tab(page, "Settings")).to_have_count(0)  # a reviewer's dashboard: overview, review
    current = page.get_by_test_id("review-current")
    shown = current.get_by_role("heading", level=2)
    expect(shown).to_have_text(image_title(first))
    expect(page.get_by_test_id("review-given")).to_have_text(first.consensus_label)
    expect(page.get_by_test_id("review-model")).to_contain_text(another(first.consensus_label))
    expect(page.get_by_test_id("review-model")).to_contain_text("90%")
    expect(page.get_by_test_id("review-score")).to_have_text("0.95")
    expect(page.get_by_test_id("review-votes")).to_contain_text(f"{first.consensus_label} by bob")
    expect(page.get_by_test_id("review-counts")).to_contain_text("4")
    screenshot(page, "review-queue")

    # c: the label was right
    page.keyboard.press("c")
    status = page.get_by_test_id("review-status")
    expect(status).to_contain_text(f"Image {first.id}: label confirmed")
    expect(shown).to_have_text(image_title(second))
    review = LabelReview.objects.get(image=first)
    assert review.state == ReviewState.CONFIRMED
    assert review.decided_by == carol
    assert review.decision_id is not None

    # a class key: relabel as that class
    new_label = another(second.consensus_label)
    page.keyboard.press(new_label)
    expect(status).to_contain_text(f"Image {second.id}: relabeled to {new_label}")
    expect(shown).to_have_text(image_title(third))
    review = LabelReview.objects.get(image=second)
    assert review.state == ReviewState.RELABELED
    assert (review.decided_by, review.label_after) == (carol, new_label)
    second.refresh_from_db()
    assert second.consensus_label == new_label

    # b: send back for fresh votes; bob's vote stays on record but no longer counts
    page.keyboard.press("b")
    expect(status).to_contain_text(f"Image {third.id}: sent back")
    review = LabelReview.objects.get(image=third)
    assert review.state == ReviewState.SENT_BACK
    assert review.decided_by == carol
    assert Annotation.objects.get(image=third, annotator=bob).discarded_at is not None
    decision_ids = set(
        LabelReview.objects.exclude(decision_id=None).values_list("decision_id", flat=True)
    )
    assert len(decision_ids) == 3  # each decision its own id

    # j/k move; the last one stays open
    expect(shown).to_have_text(image_title(fourth))
    assert LabelReview.objects.get(image=fourth).state == ReviewState.OPEN

    # The decided ones, by state (the filter is in the URL)
    page.get_by_label("State").select_option("relabeled")
    expect(page).to_have_url(re.compile(r"state=relabeled"))
    expect(shown).to_have_text(image_title(second))
    page.get_by_label("State").select_option("open")

    # A phone: the decision buttons are on the screen, not cut off at its edge
    page.set_viewport_size(PHONE)
    page.reload()
    expect(shown).to_have_text(image_title(fourth))
    # Nothing wider than the phone: no sideways scrolling to reach a button
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    decision = page.get_by_role("group", name="Decision")
    buttons = decision.get_by_role("button")
    expect(buttons).to_have_count(2 + 10)  # confirm, send back, a relabel button per class
    for button in buttons.all():
        button.scroll_into_view_if_needed()
        expect(button).to_be_in_viewport()
        box = button.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    screenshot(page, "review-queue-phone")
    # and the keys still work there
    page.keyboard.press("c")
    expect(status).to_contain_text(f"Image {fourth.id}: label confirmed")
    expect(page.get_by_test_id("review-empty")).to_be_visible()


def test_empty_review_queue_says_what_it_is_and_admins_can_check_labels(page, alice, bob, project):
    labeled_by(project, alice, bob, 6)  # labels, none of them suspect yet
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/review")
    empty = page.get_by_test_id("review-empty")
    expect(empty).to_contain_text("label check")

    def run_started(response) -> bool:
        return response.url.endswith("/training-runs/") and response.request.method == "POST"

    with page.expect_response(run_started) as answer:
        empty.get_by_role("button", name="Check labels now").click()
    assert answer.value.status == 202
    expect(page.get_by_test_id("review-status")).to_contain_text("Label check queued")
    assert TrainingRun.objects.filter(project=project, trigger=RunTrigger.LABEL_CHECK).count() == 1


def test_annotator_quality_table_shows_hand_counted_gold_accuracy(page, alice, bob, carol, project):
    truth = add_digits(project, alice, 9)
    images = list(Image.objects.filter(project=project).order_by("id"))
    gold, plain = images[:5], images[5:]
    for image in gold:
        image.gold_label = truth[image.original_name]
    Image.objects.bulk_update(gold, ["gold_label"])
    # bob answers the five gold questions: right, right, wrong, right, wrong
    right = [True, True, False, True, False]
    for image, ok in zip(gold, right, strict=True):
        expected = image.gold_label
        GoldAnswer.objects.create(
            image=image,
            annotator=bob,
            label=expected if ok else another(expected),
            expected=expected,
            correct=ok,
            client_id=uuid.uuid4(),
            duration_ms=4000,
        )
    for image in plain:
        annotation_submit(
            image=image, user=bob, label=truth[image.original_name], client_id=uuid.uuid4()
        )
    correct = sum(right)  # the hand count: 3 of 5
    accuracy = round(100 * correct / len(right))
    assert (correct, accuracy) == (3, 60)
    project.gold_alert_accuracy = 0.7
    project.save(update_fields=["gold_alert_accuracy"])

    log_in(page, "carol")  # a reviewer sees annotator quality too
    page.goto(f"/projects/{project.id}/admin")
    table = page.get_by_test_id("annotator-quality")
    row = table.get_by_role("row", name=re.compile(r"^bob"))
    cell = row.get_by_test_id("gold-accuracy")
    expect(cell).to_contain_text(f"{accuracy}%")
    expect(cell).to_contain_text(f"{correct} of {len(right)}")
    expect(cell).to_contain_text("95% interval")
    # Below the alert threshold: said in words, not only in colour
    expect(cell).to_contain_text("Low: below 70%")
    table.scroll_into_view_if_needed()
    screenshot(page, "annotator-quality")


def test_admin_marks_and_unmarks_a_gold_question_in_the_image_detail(page, alice, project):
    add_digits(project, alice, 3, labeled=True)
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/images")
    page.locator(".thumbs button").first.click()
    detail = page.get_by_role("complementary", name="Image details")
    expect(detail.get_by_test_id("gold-badge")).to_have_count(0)
    detail.get_by_label("Known answer").select_option("7")
    detail.get_by_role("button", name="Mark as gold").click()
    expect(detail.get_by_test_id("gold-badge")).to_have_text("Gold: 7")
    image_id = int(re.search(r"\d+", detail.get_by_role("heading").first.inner_text()).group())
    assert Image.objects.get(pk=image_id).gold_label == "7"
    screenshot(page, "gold-question")

    detail.get_by_role("button", name="Unmark gold").click()
    expect(detail.get_by_test_id("gold-badge")).to_have_count(0)
    assert Image.objects.get(pk=image_id).gold_label is None


def test_admin_sets_consensus_and_gold_settings_as_percents(page, alice, project):
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/settings")
    consensus = page.get_by_label("Consensus")
    consensus.select_option("majority")
    expect(consensus).to_have_accessible_description(re.compile("Every vote counts the same"))
    page.get_by_label("Gold rate (%)").fill("10")
    page.get_by_label("Gold alert accuracy (%)").fill("80")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    project.refresh_from_db()
    assert (project.consensus_method, project.gold_rate) == ("majority", pytest.approx(0.1))
    assert project.gold_alert_accuracy == pytest.approx(0.8)

    # The reviewer role, with what it may do, in the member picker (the Members tab)
    page.get_by_role("navigation", name="Dashboard sections").get_by_role(
        "link", name="Members"
    ).click()
    page.get_by_label("Username to add").fill("bob")
    page.locator("#m-role").select_option("reviewer")
    expect(page.locator("#m-role")).to_have_accessible_description(
        re.compile("reviews suspect labels")
    )
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_label("Role of bob")).to_have_value("reviewer")
    assert Membership.objects.get(project=project, user__username="bob").role == Role.REVIEWER


def test_annotator_has_no_review_tab(page, bob, project):
    log_in(page, "bob")
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    expect(page.get_by_role("link", name="Review labels of Digits")).to_have_count(0)
    page.goto(f"/projects/{project.id}/admin/review")
    expect(page.get_by_text("The dashboard is for project admins and reviewers")).to_be_visible()
    expect(page.get_by_role("navigation", name="Dashboard sections")).to_have_count(0)
    expect(page.get_by_test_id("review-current")).to_have_count(0)


def open_suspects(project: Project, images: list[Image]) -> None:
    reviews_open(
        project=project,
        run_id=None,
        suspects=[
            Suspect(
                image_id=image.id,
                score=0.9 - 0.1 * n,
                given_label=image.consensus_label,
                model_label=another(image.consensus_label),
                model_confidence=0.8,
            )
            for n, image in enumerate(images)
        ],
    )


def test_a_lost_answer_is_retried_with_the_same_decision_id_and_recorded_once(
    page, console, alice, bob, carol, project
):
    console.allow(r"net::ERR_FAILED")  # the answer this test throws away
    images = labeled_by(project, alice, bob, 2)
    open_suspects(project, images)
    sent: list[dict] = []

    def lose_first_answer(route) -> None:
        sent.append(route.request.post_data_json)
        response = route.fetch()  # the server decides...
        if len(sent) == 1:
            route.abort()  # ...and its answer never arrives
        else:
            route.fulfill(response=response)

    page.route("**/api/reviews/*/decision/", lose_first_answer)
    log_in(page, "carol")
    page.goto(f"/projects/{project.id}/admin/review")
    expect(page.get_by_test_id("review-current").get_by_role("heading", level=2)).to_have_text(
        image_title(images[0])
    )
    page.keyboard.press("c")
    expect(page.get_by_test_id("review-status")).to_contain_text(
        f"Image {images[0].id}: label confirmed"
    )
    assert len(sent) == 2
    assert sent[0]["decision_id"] == sent[1]["decision_id"]
    assert sent[0]["decision"] == sent[1]["decision"] == "confirm"
    review = LabelReview.objects.get(image=images[0])
    assert (review.state, str(review.decision_id)) == (
        ReviewState.CONFIRMED,
        sent[0]["decision_id"],
    )


def test_a_review_someone_else_decided_first_says_so_and_reads_the_queue_again(
    page, console, alice, bob, carol, project
):
    console.allow(r"status of 409 \(Conflict\).*/decision/")
    images = labeled_by(project, alice, bob, 2)
    open_suspects(project, images)
    log_in(page, "carol")
    page.goto(f"/projects/{project.id}/admin/review")
    shown = page.get_by_test_id("review-current").get_by_role("heading", level=2)
    expect(shown).to_have_text(image_title(images[0]))
    # Meanwhile another reviewer (alice, an admin) decides the one on carol's screen.
    LabelReview.objects.filter(image=images[0]).update(
        state=ReviewState.CONFIRMED, decided_by=alice, decided_at=timezone.now()
    )
    page.keyboard.press(another(images[0].consensus_label))
    expect(page.get_by_test_id("review-status")).to_contain_text(
        f"Image {images[0].id} was already decided"
    )
    expect(page.get_by_test_id("review-status")).to_contain_text("alice")
    expect(shown).to_have_text(image_title(images[1]))  # the queue, read again
    review = LabelReview.objects.get(image=images[0])
    assert (review.state, review.decided_by, review.label_after) == (
        ReviewState.CONFIRMED,
        alice,
        "",
    )
