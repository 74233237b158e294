"""``GET /api/projects/{id}/export/``: who may export, what each format holds, filters and
bad parameters, all through the streamed response."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from labeling.annotations.models import Annotation
from labeling.core.storage import storage_delete, storage_open
from labeling.exports import selectors
from labeling.images.models import Image
from labeling.projects.models import Membership, Role
from tests.factories import ImageFactory, ProjectFactory
from tests.labeling.exports.conftest import label

pytestmark = pytest.mark.django_db


def url(project, query: str = "") -> str:
    return f"/api/projects/{project.id}/export/" + (f"?{query}" if query else "")


def body(response) -> bytes:
    assert response.status_code == 200, response.content[:300]
    assert response.streaming
    return b"".join(response.streaming_content)


def iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def history(image: Image) -> list[dict]:
    return [
        {
            "user": a.annotator.username,
            "label": a.label,
            "source": a.source,
            "created": iso(a.created_at),
            "discarded": a.discarded_at is not None,
        }
        for a in Annotation.objects.filter(image=image).order_by("created_at", "id")
    ]


@pytest.mark.parametrize(
    ("role", "status"),
    [
        ("anonymous", 401),
        ("outsider", 404),
        ("viewer", 403),
        ("annotator", 403),
        ("admin", 200),
        ("staff", 200),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "csv", "imagefolder"])
def test_only_project_admins_can_export_a_project(
    exported, as_user, alice, bob, victor, mallory, staff, role, status, fmt
):
    users = {
        "anonymous": None,
        "outsider": mallory,
        "viewer": victor,
        "annotator": bob,
        "admin": alice,
        "staff": staff,
    }
    response = as_user(users[role]).get(url(exported.project, f"format={fmt}"))
    assert response.status_code == status
    if status == 200:
        assert body(response)  # streamed to the end without an error
    else:
        assert set(response.json()["error"]) == {"code", "message", "details"}


def test_an_outsider_gets_404_even_for_bad_parameters(exported, as_user, mallory):
    response = as_user(mallory).get(url(exported.project, "format=xml"))
    assert response.status_code == 404


def test_json_export_has_every_image_with_its_annotations_and_prediction(exported, as_user, alice):
    response = as_user(alice).get(url(exported.project, "format=json"))
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="digits-')
    assert response["Content-Disposition"].endswith('.json"')
    data = json.loads(body(response))
    images, v1, v2 = exported.images, exported.v1, exported.v2

    def row(key, status, consensus, agreement, count, prediction, quality=None):
        image = images[key]
        return {
            "id": image.id,
            "original_name": image.original_name,
            "sha256": image.sha256,
            "format": "PNG",
            "width": 28,
            "height": 28,
            "status": status,
            "consensus_label": consensus,
            "agreement": agreement,
            "annotation_count": count,
            "annotations": history(image),
            "created_at": iso(image.created_at),
            "prediction": prediction,
            "quality": quality,
        }

    def quality(confidence):
        return {
            "suspect_score": None,  # no label check has flagged any of them
            "review": None,
            "consensus_method": "weighted",
            "consensus_confidence": confidence,
        }

    def prediction(label, confidence, version):
        return {
            "label": label,
            "confidence": confidence,
            "uncertainty": 1 - confidence,
            "model_version": version.number,
            "model_version_id": version.id,
        }

    assert data["project"] == {
        "id": exported.project.id,
        "name": "Digits",
        "slug": "digits",
        "labels": [str(i) for i in range(10)],
    }
    assert data["filters"] == {"labeled": False, "predictions": True}
    assert data["exported_at"].endswith("Z")
    assert data["image_count"] == 5
    assert data["images"] == [
        row("unanimous", "labeled", "3", 1.0, 2, prediction("3", 0.875, v2), quality(1.0)),
        row("resolved", "labeled", "7", 0.5, 2, prediction("1", 0.5, v2), quality(0.5)),
        row("predicted", "unlabeled", None, None, 0, prediction("5", 0.625, v2)),
        row("bare", "unlabeled", None, None, 0, None),
        row("partial", "partial", None, 1.0, 1, prediction("3", 0.75, v1)),
    ]
    # The histories are the real ones: who said what, the admin's resolution last.
    assert [(a["user"], a["label"], a["source"]) for a in data["images"][1]["annotations"]] == [
        ("bob", "7", "manual"),
        ("carol", "1", "manual"),
        ("alice", "7", "resolution"),
    ]


def test_csv_export_has_one_row_per_image(exported, as_user, alice):
    response = as_user(alice).get(url(exported.project, "format=csv"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.reader(io.StringIO(body(response).decode())))
    images, v1, v2 = exported.images, exported.v1, exported.v2
    assert rows[0] == [
        "id",
        "original_name",
        "sha256",
        "status",
        "consensus_label",
        "agreement",
        "annotation_count",
        "predicted_label",
        "confidence",
        "uncertainty",
        "model_version",
        "suspect_score",
        "review_state",
        "reviewed_by",
        "review_label_after",
        "consensus_method",
        "consensus_confidence",
    ]

    def labeled(confidence):  # never flagged by a label check: no score, no review
        return ["", "", "", "", "weighted", confidence]

    unlabeled = [""] * 6

    def line(key, *values):
        image = images[key]
        return [str(image.id), image.original_name, image.sha256, *map(str, values)]

    assert rows[1:] == [
        line("unanimous", "labeled", "3", 1.0, 2, "3", 0.875, 0.125, v2.number, *labeled(1.0)),
        line("resolved", "labeled", "7", 0.5, 2, "1", 0.5, 0.5, v2.number, *labeled(0.5)),
        line("predicted", "unlabeled", "", "", 0, "5", 0.625, 0.375, v2.number, *unlabeled),
        line("bare", "unlabeled", "", "", 0, "", "", "", "", *unlabeled),
        line("partial", "partial", "", 1.0, 1, "3", 0.75, 0.25, v1.number, *unlabeled),
    ]


def test_imagefolder_export_zips_labeled_images_into_class_folders(exported, as_user, alice):
    response = as_user(alice).get(url(exported.project, "format=imagefolder"))
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].endswith('.zip"')
    archive = zipfile.ZipFile(io.BytesIO(body(response)))
    assert archive.testzip() is None  # every CRC checks out
    unanimous, resolved = exported.images["unanimous"], exported.images["resolved"]
    assert archive.namelist() == [f"3/{unanimous.id}-one.png", f"7/{resolved.id}-two.png"]
    for image, name in zip([unanimous, resolved], archive.namelist(), strict=True):
        with storage_open(key=image.storage_key) as stored:
            assert archive.read(name) == stored.read()
        info = archive.getinfo(name)
        assert info.date_time[:3] == image.created_at.timetuple()[:3]


def test_labeled_true_keeps_only_consensus_labeled_images(exported, as_user, alice):
    client = as_user(alice)
    data = json.loads(body(client.get(url(exported.project, "format=json&labeled=true"))))
    labeled = [exported.images["unanimous"].id, exported.images["resolved"].id]
    assert [image["id"] for image in data["images"]] == labeled
    assert data["filters"]["labeled"] is True
    rows = list(
        csv.DictReader(
            io.StringIO(body(client.get(url(exported.project, "format=csv&labeled=true"))).decode())
        )
    )
    assert [int(row["id"]) for row in rows] == labeled


def test_predictions_false_leaves_the_model_out(exported, as_user, alice):
    client = as_user(alice)
    data = json.loads(body(client.get(url(exported.project, "predictions=false"))))
    assert len(data["images"]) == 5
    assert all("prediction" not in image for image in data["images"])
    header = body(client.get(url(exported.project, "format=csv&predictions=0"))).splitlines()[0]
    assert header == (
        b"id,original_name,sha256,status,consensus_label,agreement,annotation_count,"
        b"suspect_score,review_state,reviewed_by,review_label_after,consensus_method,"
        b"consensus_confidence"
    )


def test_the_default_format_is_json(exported, as_user, alice):
    data = json.loads(body(as_user(alice).get(url(exported.project))))
    assert data["image_count"] == 5


@pytest.mark.parametrize(
    ("query", "parameter", "words"),
    [
        ("format=xml", "format", "unknown export format 'xml'"),
        ("format=", "format", "unknown export format ''; use one of json, csv, imagefolder"),
        ("labeled=maybe", "labeled", "labeled must be true or false, not 'maybe'"),
        ("predictions=2", "predictions", "predictions must be true or false"),
        ("fromat=csv", "fromat", "unknown parameter 'fromat'"),
        ("format=csv&format=json", "format", "format is given 2 times"),
        ("format=imagefolder&predictions=true", "predictions", "does not apply to imagefolder"),
        ("format=imagefolder&labeled=false", "labeled", "does not apply to imagefolder"),
    ],
)
def test_bad_export_parameters_are_a_400_naming_the_problem(
    exported, as_user, alice, query, parameter, words
):
    response = as_user(alice).get(url(exported.project, query))
    if parameter is None:
        assert response.status_code == 200
        return
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_parameter"
    assert words in error["message"]
    assert error["details"]["parameter"] == parameter


def test_the_export_reads_in_keyset_chunks_with_four_queries_each(
    exported, as_user, alice, bob, monkeypatch
):
    other = ProjectFactory()
    for i in range(6):
        mine = ImageFactory(project=exported.project, seed=100 + i)
        label(mine, bob, "2")
        # Another project's labeled image between two of ours: in the id range, not ours.
        label(ImageFactory(project=other, seed=200 + i), bob, "1")
    monkeypatch.setattr(selectors, "CHUNK_SIZE", 4)
    client = as_user(alice)
    with CaptureQueriesContext(connection) as queries:
        data = json.loads(body(client.get(url(exported.project))))
    ids = [image["id"] for image in data["images"]]
    assert ids == sorted(
        Image.objects.filter(project=exported.project).values_list("id", flat=True)
    )
    for image in data["images"]:
        assert image["annotations"] == history(Image.objects.get(pk=image["id"]))
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "images_image"' in q["sql"] and "LIMIT 4" in q["sql"]
    ]
    notes = [
        q["sql"] for q in queries.captured_queries if 'FROM "annotations_annotation"' in q["sql"]
    ]
    scores = [
        q["sql"] for q in queries.captured_queries if 'FROM "learning_imagescore"' in q["sql"]
    ]
    reviews = [
        q["sql"] for q in queries.captured_queries if 'FROM "annotations_labelreview"' in q["sql"]
    ]
    # 11 images, 4 a query: 3 queries each for images, annotations, model versions and
    # reviews, however many annotations each image has (no query per image).
    assert (len(reads), len(notes), len(scores), len(reviews)) == (3, 3, 3, 3)


def test_a_file_missing_from_the_store_is_named_in_the_zip_not_fatal(exported, as_user, alice):
    gone = exported.images["resolved"]
    storage_delete(key=gone.storage_key)
    archive = zipfile.ZipFile(
        io.BytesIO(body(as_user(alice).get(url(exported.project, "format=imagefolder"))))
    )
    assert archive.namelist() == [
        f"3/{exported.images['unanimous'].id}-one.png",
        "export-errors.txt",
    ]
    report = archive.read("export-errors.txt").decode()
    assert f"{gone.id}\ttwo.png\tFileNotFoundError" in report


def test_class_folders_are_safe_and_distinct_whatever_the_labels(as_user, alice, bob):
    project = ProjectFactory(slug="odd", labels=["cat", "Cat", "a/b", "..", "x:y"])
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    Membership.objects.create(project=project, user=bob, role=Role.ANNOTATOR)
    images = {}
    for i, value in enumerate(project.labels):
        images[value] = ImageFactory(
            project=project, original_name=f"../evil\\{i}.png", seed=300 + i
        )
        label(images[value], bob, value)
    archive = zipfile.ZipFile(
        io.BytesIO(body(as_user(alice).get(url(project, "format=imagefolder"))))
    )
    folders = [name.split("/")[0] for name in archive.namelist()]
    assert folders == ["cat", "Cat-2", "a_b", "_", "x_y"]
    assert all(name.count("/") == 1 for name in archive.namelist())
    assert archive.namelist()[0] == f"cat/{images['cat'].id}-0.png"


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted(as_user, alice, bob):
    """CSV injection: names and class names come from users; a spreadsheet must show them as
    text. Plain numbers (a class called -1) are left alone, and json keeps the raw values."""
    project = ProjectFactory(labels=["-1", "+1", "=cmd|' /C calc'!A0", "@SUM(A1)"])
    project.retrain_every = 0
    project.save()
    Membership.objects.create(project=project, user=alice, role=Role.ADMIN)
    Membership.objects.create(project=project, user=bob, role=Role.ANNOTATOR)
    names = ['=HYPERLINK("http://evil.example")', "+cmd.png", "-2.5", "\tx.png", "plain.png"]
    images = [ImageFactory(project=project, original_name=n, seed=i) for i, n in enumerate(names)]
    for image, value in zip(images, ["=cmd|' /C calc'!A0", "-1", "@SUM(A1)", "+1"], strict=False):
        label(image, bob, value)
    client = as_user(alice)
    rows = list(csv.DictReader(io.StringIO(body(client.get(url(project, "format=csv"))).decode())))
    got = {row["id"]: (row["original_name"], row["consensus_label"]) for row in rows}
    assert got == {
        str(images[0].pk): ('\'=HYPERLINK("http://evil.example")', "'=cmd|' /C calc'!A0"),
        str(images[1].pk): ("'+cmd.png", "-1"),
        str(images[2].pk): ("-2.5", "'@SUM(A1)"),
        str(images[3].pk): ("'\tx.png", "+1"),
        str(images[4].pk): ("plain.png", ""),
    }
    data = json.loads(body(client.get(url(project, "format=json"))))
    assert [i["original_name"] for i in data["images"]] == names
    assert [i["consensus_label"] for i in data["images"]][:2] == ["=cmd|' /C calc'!A0", "-1"]
