"""The admin dashboard in a real browser: overview, model (before any model), image browser,
upload of a zip with a corrupt image, settings; the Model tab's Backbone panel.

    (cd frontend && npm run build) && .venv/bin/python -m pytest tests/e2e/test_dashboard.py -q
"""

from __future__ import annotations

import io
import re
import uuid
import zipfile

import pytest

from labeling.annotations.models import Annotation
from labeling.annotations.services import annotation_submit
from labeling.images.models import Image
from labeling.learning.models import Backbone, RunLane, RunStatus, RunTrigger, TrainingRun
from labeling.projects.models import Project
from tests.e2e.conftest import add_digits, digit_png, expect, log_in, screenshot
from tests.factories import model_version

pytestmark = pytest.mark.django_db(transaction=True)


def seed(project: Project, admin, annotator) -> None:
    """Labeled and unlabeled digits, and some of the annotator's work."""
    add_digits(project, admin, 30, labeled=True)
    truth = add_digits(project, admin, 40, start=30)
    for image in Image.objects.filter(project=project, status="unlabeled").order_by("id")[:12]:
        label = truth[image.original_name]
        annotation_submit(image=image, user=annotator, label=label, client_id=uuid.uuid4())


def tab(page, name: str):
    sections = page.get_by_role("navigation", name="Dashboard sections")
    return sections.get_by_role("link", name=name, exact=True)


def corrupt_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for n in (100, 101, 102):
            archive.writestr(f"batch/digit-{n}.png", digit_png(n)[0])
        archive.writestr("batch/broken.png", digit_png(103)[0][:60])  # truncated PNG
    return out.getvalue()


def test_admin_dashboard_overview_model_images_upload_and_settings(
    page, console, alice, bob, project
):
    console.allow(r"status of 409 \(Conflict\).*/labels/rename/")  # the refused rename below
    seed(project, alice, bob)
    log_in(page, "alice")
    expect(page.get_by_role("heading", name="Projects")).to_be_visible()
    page.get_by_role("link", name="Dashboard of Digits").click()

    # Overview
    expect(page.get_by_role("heading", name="Images by status")).to_be_visible()
    expect(page.get_by_role("img", name="Images by status: unlabeled 28")).to_be_visible()
    annotators = page.get_by_role("region", name="Annotators", exact=True)
    expect(annotators.get_by_role("row", name="bob")).to_contain_text("12")
    screenshot(page, "dashboard")

    # Model: no model yet, said plainly
    tab(page, "Model").click()
    expect(page.get_by_test_id("active-model")).to_have_text("No model yet.")
    expect(page.get_by_test_id("curve-empty")).to_be_visible()
    screenshot(page, "dashboard-model")

    # Images: filter, then the detail panel
    tab(page, "Images").click()
    page.get_by_label("Show").select_option("labeled")
    expect(page.locator(".thumbs li")).to_have_count(30 + 12)
    page.locator(".thumbs button").first.click()
    detail = page.get_by_role("complementary", name="Image details")
    expect(detail.get_by_role("heading", name="Annotations")).to_be_visible()
    expect(detail.locator(".annotations li")).to_have_count(1)
    screenshot(page, "dashboard-images")

    # Likely label errors: the server finds where the model's prediction differs from the
    # label (the browser used to scan the first 2,000 labeled images for them, and missed
    # the rest of a large project).
    labeled = list(Image.objects.filter(project=project, status="labeled").order_by("id"))
    for image in labeled:
        image.predicted_label = image.consensus_label
    doubted = labeled[:2]  # the oldest: last in the list, far from the first page
    for image, confidence in zip(doubted, (0.7, 0.95), strict=True):
        image.predicted_label = "0" if image.consensus_label != "0" else "1"
        image.confidence = confidence
    Image.objects.bulk_update(labeled, ["predicted_label", "confidence"])
    with page.expect_request(lambda r: "model_disagrees=true" in r.url):
        page.get_by_label("Show").select_option("model_disagrees")
    expect(page.locator(".thumbs li")).to_have_count(2)
    doubted.reverse()  # the surer disagreement first
    shown = page.locator(".thumbs button").evaluate_all(
        "buttons => buttons.map(b => b.getAttribute('aria-label'))"
    )
    assert shown == [
        f"Image {i.id}, labeled, label {i.consensus_label}, predicted {i.predicted_label}"
        for i in doubted
    ]

    # Upload: a zip with one corrupt image; every file gets its answer
    tab(page, "Upload").click()
    page.set_input_files(
        "#upload-files",
        files=[{"name": "batch.zip", "mimeType": "application/zip", "buffer": corrupt_zip()}],
    )
    expect(page.get_by_text("1 file,")).to_be_visible()
    page.get_by_role("button", name="Upload", exact=True).click()
    results = page.get_by_test_id("upload-results")
    expect(results.get_by_role("row")).to_have_count(1 + 4)
    broken = results.get_by_role("row", name="batch.zip/batch/broken.png")
    expect(broken).to_contain_text("rejected")
    expect(broken.locator("td").nth(3)).not_to_be_empty()
    expect(page.get_by_test_id("upload-summary")).to_contain_text("3 created")
    expect(page.get_by_test_id("upload-summary")).to_contain_text("1 rejected")
    screenshot(page, "dashboard-upload")
    assert Image.objects.filter(project=project).count() == 70 + 3

    # Settings: change the retraining interval
    tab(page, "Settings").click()
    page.get_by_label("Retrain every").fill("25")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    project.refresh_from_db()
    assert project.retrain_every == 25
    strategy = page.get_by_label("Strategy")
    expect(strategy).to_have_accessible_description(re.compile("re-orders the queue when saved"))
    strategy.select_option("random")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    project.refresh_from_db()
    assert project.strategy == "random"

    # Rename a class that has labels: everywhere at once, and the classes box follows.
    threes = Annotation.objects.filter(image__project=project, label="3").count()
    assert threes > 0
    page.get_by_label("Class to rename").select_option("3")
    page.get_by_label("New name").fill("three")
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Renamed “3” to “three”.")).to_be_visible()
    expect(page.get_by_label("Classes")).to_have_value(re.compile(r"^0\n1\n2\nthree\n4\n"))
    assert Annotation.objects.filter(image__project=project, label="three").count() == threes
    page.get_by_label("Class to rename").select_option("4")
    page.get_by_label("New name").fill("three")
    page.get_by_role("button", name="Rename", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("already has a class named 'three'")
    screenshot(page, "dashboard-settings")
    # Saving the other settings afterwards does not send the old class list back.
    page.get_by_label("Retrain every").fill("30")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").filter(has_text="Saved.")).to_be_visible()
    project.refresh_from_db()
    assert (project.retrain_every, project.labels[3]) == (30, "three")
    # The members have their own tab.
    tab(page, "Members").click()
    expect(page.get_by_label("Role of bob")).to_have_value("annotator")


def backbones(project: Project) -> Backbone:
    """An imported backbone (#1) and a newer pretrained one (#2, the current one), with the
    metrics the worker writes; a scratch version v1 and a version v2 built on #2."""
    common = {"project": project, "arch": "resnet18", "stem": "small", "width": 16}
    Backbone.objects.create(
        **common, number=1, source="import", origin="https://example.org/resnet18-f37072fd.pth",
        file_key="weights/digits/1.pth", file_sha256="a" * 64, input_size=224, embed_dim=512,
        metrics={"probe": {"n": 30, "labels": 30, "knn": None, "linear": None,
                           "note": "a probe needs at least 2 classes with 2 or more labels each"}},
    )  # fmt: skip
    probe = {
        "n": 118, "labels": 120, "classes": 10, "note": None,
        "knn": {"accuracy": 0.62, "correct": 73, "n": 118, "interval": [0.55, 0.68]},
        "linear": {"accuracy": 0.66, "correct": 78, "n": 118, "interval": [0.58, 0.73]},
    }  # fmt: skip
    current = Backbone.objects.create(
        **common, number=2, source="pretrain", file_key="backbones/digits/2.pt",
        file_sha256="b" * 64, input_size=28, embed_dim=128, images_seen=20,
        metrics={"method": "simclr", "epochs_run": 30, "seconds": 2460, "stopped": "epochs",
                 "loss_curve": [5.2, 4.1, 3.6, 3.3, 3.1], "probe": probe},
    )  # fmt: skip
    model_version(project, 1, metrics={"accuracy": 0.5}, labels_used=10)
    built_on = model_version(project, 2, metrics={"accuracy": 0.8}, labels_used=30, active=True)
    built_on.backbone = current
    built_on.save(update_fields=["backbone"])
    return current


def test_admin_sees_the_backbone_and_pretrains_a_new_one_beside_the_rounds(page, alice, project):
    add_digits(project, alice, 20)  # pretraining needs at least 16 images
    backbones(project)
    log_in(page, "alice")
    page.goto(f"/projects/{project.pk}/admin")
    tab(page, "Model").click()

    panel = page.get_by_role("region", name="Backbone", exact=True)
    expect(panel.get_by_test_id("backbone-current")).to_have_text(
        "#2 · pretrained on 20 images · SimCLR · 30 epochs · 41 min"
    )
    expect(panel.get_by_test_id("backbone-probe")).to_have_text(
        "k-NN 62% (55\u201368%) · linear 66% on 120 labels"
    )
    expect(
        panel.get_by_role("img", name=re.compile(r"loss over 5 epochs, from 5\.20 to 3\.10"))
    ).to_be_visible()
    older = panel.locator("details")
    expect(older.locator("summary")).to_have_text("Older backbones (1)")
    expect(older.locator("li")).to_be_hidden()  # folded away until asked for
    older.locator("summary").click()
    expect(older.locator("li")).to_contain_text(
        "#1 · imported resnet18-f37072fd.pth (resnet18, 224 px)"
    )

    versions = page.get_by_role("region", name="Model versions")
    expect(versions.get_by_role("row", name=re.compile(r"^v2"))).to_contain_text("backbone #2")
    expect(versions.get_by_role("row", name=re.compile(r"^v1"))).to_contain_text("scratch")

    panel.get_by_label("Minutes").fill("5")
    panel.get_by_role("button", name="Pretrain backbone").click()
    expect(panel.get_by_test_id("backbone-run-status")).to_have_text("queued")
    expect(panel.get_by_test_id("backbone-run-progress")).to_contain_text("Backbone run #")
    expect(panel.get_by_role("button", name=re.compile("Cancel backbone run"))).to_be_visible()
    run = TrainingRun.objects.get(project=project, trigger=RunTrigger.PRETRAIN)
    assert (run.lane, run.status, run.params) == (
        RunLane.BACKGROUND,
        RunStatus.QUEUED,
        {"minutes": 5.0},
    )
    # The Training card watches rounds only (here the cold start the ingest queued): the queued
    # pretraining, the newest run but in the other lane, is not passed off as one, on a fresh
    # load either.
    page.reload()
    expect(panel.get_by_test_id("backbone-run-status")).to_have_text("queued")
    cold_start = TrainingRun.objects.get(project=project, trigger=RunTrigger.COLD_START)
    expect(page.get_by_test_id("run-progress")).to_contain_text(
        f"Round #{cold_start.pk} (cold-start ordering)"
    )
    expect(page.get_by_test_id("run-progress")).not_to_contain_text("pretraining")
    expect(page.get_by_role("button", name="Retrain now")).to_be_enabled()
    panel.scroll_into_view_if_needed()
    screenshot(page, "dashboard-backbone")


def test_a_slow_answer_to_an_older_filter_does_not_overwrite_a_newer_one(page, alice, bob, project):
    """The image browser's first, unfiltered page answers after the filtered one (held back
    here on purpose, as a loaded server may): the list shows what the filter asks for."""
    seed(project, alice, bob)

    page.add_init_script(
        """
        const send = window.fetch;
        window.fetch = async (...args) => {
          const answer = await send(...args);
          const url = String(args[0] instanceof Request ? args[0].url : args[0]);
          if (url.includes("/images/?") && !url.includes("status=")) {
            await new Promise((resolve) => setTimeout(resolve, 2000));
          }
          return answer;
        };
        """
    )
    log_in(page, "alice")
    page.goto(f"/projects/{project.id}/admin/images")
    page.get_by_label("Show").select_option("labeled")
    page.wait_for_timeout(3000)  # past the held-back answer
    expect(page.locator(".thumbs li")).to_have_count(30 + 12)
