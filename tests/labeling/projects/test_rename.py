"""Renaming a class: ``POST /api/projects/{id}/labels/rename/`` renames it everywhere at once,
a client or an import that read the old name keeps working, and bad input changes nothing."""

from __future__ import annotations

import io
import uuid

import pytest

from labeling.annotations.models import Annotation
from labeling.annotations.services import annotation_submit
from labeling.core.errors import ValidationFailed
from labeling.images.models import Image, ImageStatus
from labeling.images.services import images_ingest
from labeling.images.sources import Source
from labeling.projects.models import Project
from tests.factories import ImageFactory, png_bytes

pytestmark = pytest.mark.django_db


def _rename(client, project, old, new):
    return client.post(
        f"/api/projects/{project.id}/labels/rename/", {"old": old, "new": new}, format="json"
    )


def _labeled(project, user, label: str, *, predicted: str | None = None) -> Image:
    image = ImageFactory(project=project, predicted_label=predicted)
    image = Image.objects.select_related("project").get(pk=image.pk)
    annotation_submit(image=image, user=user, label=label, client_id=uuid.uuid4())
    return image


def test_a_rename_reaches_every_annotation_consensus_and_prediction(as_user, alice, bob, project):
    three = _labeled(project, bob, "3", predicted="3")
    eight = _labeled(project, bob, "8", predicted="3")  # the model got this one wrong
    waiting = ImageFactory(project=project, predicted_label="3")

    response = _rename(as_user(alice), project, "3", " three ")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["labels"] == ["0", "1", "2", "three", "4", "5", "6", "7", "8", "9"]  # same place
    assert body["image_count"] == 3

    assert set(Annotation.objects.filter(image__project=project).values_list("label")) == {
        ("three",),
        ("8",),
    }
    rows = dict(Image.objects.filter(project=project).values_list("id", "consensus_label"))
    assert rows == {three.id: "three", eight.id: "8", waiting.id: None}
    predicted = set(Image.objects.filter(project=project).values_list("predicted_label"))
    assert predicted == {("three",)}
    project.refresh_from_db()
    assert project.label_renames == [["3", "three"]]

    # The annotation UI and the API filter by the new name at once.
    listed = as_user(alice).get(f"/api/projects/{project.id}/images/?label=three").json()
    assert [row["id"] for row in listed["results"]] == [three.id]
    # Renamed back later: both renames are kept, in order.
    assert _rename(as_user(alice), project, "three", "3").status_code == 200
    project.refresh_from_db()
    assert project.label_renames == [["3", "three"], ["three", "3"]]
    shown = as_user(alice).get(f"/api/projects/{project.id}/").json()["label_renames"]
    assert shown == [["3", "three"], ["three", "3"]]  # for clients that cache class names
    assert Annotation.objects.get(image=three).label == "3"


def test_a_label_sent_with_the_old_name_after_a_rename_is_stored_under_the_new_one(
    as_user, alice, bob, project
):
    """An annotator's page (or an API client) that loaded the classes before the rename."""
    image = Image.objects.select_related("project").get(pk=ImageFactory(project=project).pk)
    stale = image.project
    assert _rename(as_user(alice), project, "3", "three").status_code == 200
    assert "3" in stale.labels
    submission = annotation_submit(image=image, user=bob, label="3", client_id=uuid.uuid4())
    assert submission.annotation.label == "three"
    image.refresh_from_db()
    assert (image.status, image.consensus_label) == (ImageStatus.LABELED, "three")
    # A client that still has the old list: its labels land under the new name too.
    response = as_user(bob).post(
        "/api/annotations/",
        {"image": ImageFactory(project=project).pk, "label": "3", "client_id": str(uuid.uuid4())},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["label"] == "three"
    # A class of the old name added later is that new class, not the renamed one.
    project.refresh_from_db()
    project.labels = [*project.labels, "3"]
    project.save()
    image = Image.objects.select_related("project").get(pk=ImageFactory(project=project).pk)
    assert annotation_submit(image=image, user=bob, label="3", client_id=uuid.uuid4()).created
    assert Annotation.objects.get(image=image).label == "3"
    with pytest.raises(ValidationFailed, match="'nine' is not one of the project's classes"):
        annotation_submit(image=image, user=bob, label="nine", client_id=uuid.uuid4())


def test_an_import_running_during_a_rename_stores_the_new_name(alice, project):
    """Folder labels are read against the classes the import started with; a rename landing
    mid-import reaches the rows it writes."""
    renamed = []

    def sources():
        for i in range(3):
            if i == 1:  # an admin renames the class while the import reads its files
                from labeling.projects.services import project_label_rename

                project_label_rename(project=Project.objects.get(pk=project.pk), old="3", new="3s")
                renamed.append(True)
            data = png_bytes(500 + i)
            yield Source(name=f"3/{i}.png", read=lambda d=data: io.BytesIO(d).read(), folder="3")

    report = images_ingest(project=project, user=alice, sources=sources(), labels_from_folders=True)
    assert renamed and [r.status for r in report.results] == ["created"] * 3
    assert set(Image.objects.filter(project=project).values_list("consensus_label")) == {("3s",)}
    assert set(Annotation.objects.filter(image__project=project).values_list("label")) == {("3s",)}


def test_an_upload_whose_manifest_has_the_old_name_labels_the_renamed_class(alice, project):
    from labeling.projects.services import project_label_rename

    project_label_rename(project=project, old="3", new="three")
    project.refresh_from_db()
    data = png_bytes(600)
    report = images_ingest(
        project=project,
        user=alice,
        sources=[Source(name="a.png", read=lambda: data)],
        manifest={"a.png": "3"},
    )
    assert [(r.status, r.label) for r in report.results] == [("created", "three")]
    assert Image.objects.get(project=project).consensus_label == "three"


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"old": "eleven", "new": "x"}, 400, "'eleven' is not one of the project's classes"),
        ({"old": "3", "new": "4"}, 409, "already has a class named '4'"),
        ({"old": "3", "new": "   "}, 400, "blank"),
        ({"old": "3", "new": "x" * 101}, 400, "100 characters"),
        ({"old": "3"}, 400, "new"),
        ({"new": "three"}, 400, "old"),
        ({"old": ["3"], "new": "three"}, 400, "old"),
    ],
)
def test_a_bad_rename_is_a_clear_4xx_and_changes_nothing(
    as_user, alice, bob, project, payload, status, fragment
):
    image = _labeled(project, bob, "3")
    response = as_user(alice).post(
        f"/api/projects/{project.id}/labels/rename/", payload, format="json"
    )
    assert response.status_code == status, response.content
    assert fragment in response.content.decode()
    project.refresh_from_db()
    assert project.labels == [str(d) for d in range(10)] and project.label_renames == []
    assert Annotation.objects.get(image=image).label == "3"


def test_the_same_name_is_no_change(as_user, alice, project):
    assert _rename(as_user(alice), project, "3", "3").status_code == 200
    project.refresh_from_db()
    assert project.label_renames == []


def test_only_a_project_admin_renames(as_user, bob, victor, mallory, project):
    assert _rename(as_user(bob), project, "3", "three").status_code == 403
    assert _rename(as_user(victor), project, "3", "three").status_code == 403
    assert _rename(as_user(mallory), project, "3", "three").status_code == 404
    assert _rename(as_user(None), project, "3", "three").status_code in (401, 403)
    project.refresh_from_db()
    assert "3" in project.labels
