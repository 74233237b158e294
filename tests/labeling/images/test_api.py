"""Listing, filtering and paginating images; detail with annotations; the bytes."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from labeling.annotations.models import Annotation
from labeling.images.models import ImageStatus
from tests.factories import ImageFactory

pytestmark = pytest.mark.django_db


def test_images_are_cursor_paginated_without_gaps_or_repeats(bob, as_user, project):
    made = {image.id for image in ImageFactory.create_batch(23, project=project)}
    client, seen, url = as_user(bob), [], f"/api/projects/{project.id}/images/?page_size=5"
    pages = 0
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url, pages = body["next"], pages + 1
    assert pages == 5
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == made
    assert seen == sorted(seen, reverse=True)


def test_images_are_filtered_by_status_label_prediction_uncertainty_and_disagreement(
    bob, as_user, project
):
    plain = ImageFactory(project=project)
    labeled = ImageFactory(
        project=project, status=ImageStatus.LABELED, consensus_label="3", agreement=1.0
    )
    disputed = ImageFactory(
        project=project, status=ImageStatus.DISPUTED, consensus_label="5", agreement=0.5
    )
    unsure = ImageFactory(project=project, predicted_label="8", uncertainty=0.9, confidence=0.1)
    client = as_user(bob)

    def ids(query: str) -> set[int]:
        response = client.get(f"/api/projects/{project.id}/images/?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("status=unlabeled") == {plain.id, unsure.id}
    assert ids("status=labeled&status=disputed") == {labeled.id, disputed.id}
    assert ids("label=3") == {labeled.id}
    assert ids("predicted=8") == {unsure.id}
    assert ids("min_uncertainty=0.5") == {unsure.id}
    assert ids("disagreement=true") == {disputed.id}
    wrong = ImageFactory(project=project, consensus_label="1", predicted_label="7", confidence=0.6)
    surely = ImageFactory(
        project=project, consensus_label="4", predicted_label="9", confidence=0.99
    )
    ImageFactory(project=project, consensus_label="2", predicted_label="2")
    assert ids("model_disagrees=true") == {wrong.id, surely.id}
    # Likely label errors first: the model's most confident disagreements.
    response = client.get(
        f"/api/projects/{project.id}/images/?model_disagrees=true&ordering=-confidence"
    )
    assert [row["id"] for row in response.json()["results"]] == [surely.id, wrong.id]
    assert ids("ordering=id")  # ordering by an allowed field works


@pytest.mark.parametrize(
    "query",
    [
        "status=bogus",
        "min_uncertainty=lots",
        "disagreement=perhaps",
        "model_disagrees=maybe",
        "page_size=abc",
    ],
)
def test_bad_filters_are_a_400_not_a_500(bob, as_user, project, query):
    response = as_user(bob).get(f"/api/projects/{project.id}/images/?{query}")
    assert response.status_code in (200, 400)
    if query != "page_size=abc":  # an unparseable page size falls back to the default
        assert response.status_code == 400
        assert "error" in response.json()


def test_a_bad_cursor_is_a_404_with_the_error_body(bob, as_user, project):
    response = as_user(bob).get(f"/api/projects/{project.id}/images/?cursor=garbage")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_image_detail_lists_its_annotations(bob, alice, as_user, project):
    image = ImageFactory(project=project)
    Annotation.objects.create(image=image, annotator=bob, label="4", client_id=uuid.uuid4())
    body = as_user(bob).get(f"/api/images/{image.id}/").json()
    assert body["sha256"] == image.sha256
    assert [(a["annotator"], a["label"]) for a in body["annotations"]] == [("bob", "4")]
    assert body["file_url"] == f"/api/images/{image.id}/file/"


def test_image_bytes_come_back_exactly_with_cache_headers(bob, as_user, project):
    image = ImageFactory(project=project)
    response = as_user(bob).get(f"/api/images/{image.id}/file/")
    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    assert hashlib.sha256(data).hexdigest() == image.sha256
    assert response["Content-Type"] == "image/png"
    assert "immutable" in response["Cache-Control"]


def test_an_image_whose_file_is_gone_from_the_store_is_a_404_that_says_so(
    bob, as_user, project, _image_store
):
    image = ImageFactory(project=project)
    (_image_store / image.storage_key).unlink()
    response = as_user(bob).get(f"/api/images/{image.id}/file/")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "file_missing"
    assert error["message"].startswith(f"image {image.id}'s file is missing from the image store")


def test_stats_count_images_classes_and_annotators(bob, alice, as_user, project):
    ImageFactory.create_batch(2, project=project)
    labeled = ImageFactory(project=project, status=ImageStatus.LABELED, consensus_label="7")
    Annotation.objects.create(image=labeled, annotator=bob, label="7", client_id=uuid.uuid4())
    body = as_user(bob).get(f"/api/projects/{project.id}/stats/").json()
    assert body["images"]["total"] == 3
    assert body["images"]["by_status"]["unlabeled"] == 2
    assert body["images"]["by_status"]["labeled"] == 1
    assert body["class_balance"]["7"] == 1
    assert body["class_balance"]["0"] == 0
    assert body["annotators"] == [
        {"username": "bob", "annotations": 1, "last_hour": 1, "last_24h": 1}
    ]


def test_most_uncertain_first_follows_the_score_not_the_queue_priority(bob, as_user, project):
    """The diverse strategy's queue priority is not the uncertainty: "most uncertain first"
    must sort by the uncertainty itself, across cursor pages, and leave out unscored images."""
    made = [
        ImageFactory(project=project, uncertainty=u, priority=p)
        for u, p in [(0.505, 9.0), (0.9, 1.0), (0.7, 5.0), (None, 8.0), (0.61, 2.0), (0.2, 7.0)]
    ]
    client, seen = as_user(bob), []
    url = f"/api/projects/{project.id}/images/?ordering=-uncertainty&page_size=2&with_count=true"
    first = client.get(url).json()
    assert first["count"] == 5  # the scored ones
    body = first
    while True:
        seen += [row["uncertainty"] for row in body["results"]]
        if not body["next"]:
            break
        body = client.get(body["next"]).json()
        assert "count" not in body  # counted once, on the first page
    assert seen == [0.9, 0.7, 0.61, 0.505, 0.2]
    assert made[3].id not in seen


def test_images_are_found_by_file_name_or_id_and_counted(bob, as_user, project):
    cat = ImageFactory(project=project, original_name="Holiday/CAT-01.png")
    dog = ImageFactory(project=project, original_name="dog.png")
    client = as_user(bob)

    def found(term: str) -> tuple[set[int], int]:
        response = client.get(
            f"/api/projects/{project.id}/images/", {"search": term, "with_count": "true"}
        )
        assert response.status_code == 200, response.content
        body = response.json()
        return {row["id"] for row in body["results"]}, body["count"]

    assert found("cat-0") == ({cat.id}, 1)
    assert found(str(dog.id)) == ({dog.id}, 1)
    assert found(".PNG") == ({cat.id, dog.id}, 2)
    assert found("zebra") == (set(), 0)
    assert "count" not in client.get(f"/api/projects/{project.id}/images/").json()
    refused = client.get(f"/api/projects/{project.id}/images/?with_count=perhaps")
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == {"parameter": "with_count"}
