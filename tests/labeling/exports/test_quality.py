"""The export's quality fields: each consensus label's suspect score, its review's decision,
the consensus method and the label's confidence, in json and csv."""

from __future__ import annotations

import csv
import io
import json
import uuid

import pytest

from labeling.annotations.models import LabelReview
from labeling.annotations.reviews import Suspect, review_decide, reviews_open
from labeling.images.models import Image
from labeling.projects.models import Membership, Role
from tests.factories import ImageFactory, UserFactory
from tests.labeling.exports.conftest import label

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewed(project, bob):
    """Five images bob labeled: one never flagged, one in the queue, one confirmed, one
    relabeled and one sent back, by rita, a reviewer; the project votes by majority."""
    rita = UserFactory(username="rita")
    Membership.objects.create(project=project, user=rita, role=Role.REVIEWER)
    project.retrain_every = 0
    project.consensus_method = "majority"
    project.save()
    names = ["clean", "open", "confirmed", "relabeled", "sent_back"]
    images = {}
    for i, name in enumerate(names):
        images[name] = ImageFactory(project=project, original_name=f"{name}.png", seed=500 + i)
        label(images[name], bob, "3")
    scores = {"open": 0.61, "confirmed": 0.72, "relabeled": 0.83, "sent_back": 0.94}
    reviews_open(
        project=project,
        run_id=None,
        suspects=[Suspect(images[n].pk, s, "3", "8", 0.9) for n, s in scores.items()],
    )
    review = {r.image_id: r for r in LabelReview.objects.all()}
    decisions = {"confirmed": ("confirm", None), "relabeled": ("relabel", "8")}
    decisions["sent_back"] = ("send_back", None)
    for name, (decision, new) in decisions.items():
        review_decide(
            review_id=review[images[name].pk].pk,
            user=rita,
            decision=decision,
            label=new,
            decision_id=uuid.uuid4(),
        )
    return project, {name: Image.objects.get(pk=image.pk) for name, image in images.items()}


def export(client, project, fmt: str) -> bytes:
    response = client.get(f"/api/projects/{project.id}/export/?format={fmt}")
    assert response.status_code == 200
    return b"".join(response.streaming_content)


def test_json_export_carries_each_labels_quality(reviewed, as_user, alice):
    project, _images = reviewed
    data = json.loads(export(as_user(alice), project, "json"))
    quality = {i["original_name"].removesuffix(".png"): i["quality"] for i in data["images"]}

    def expect(score, review, confidence=1.0):
        return {
            "suspect_score": score,
            "review": review,
            "consensus_method": "majority",
            "consensus_confidence": confidence,
        }

    assert quality == {
        "clean": expect(None, None),
        "open": expect(0.61, {"state": "open", "decided_by": None, "label_after": None}),
        "confirmed": expect(
            0.72, {"state": "confirmed", "decided_by": "rita", "label_after": None}
        ),
        # The image's agreement: none of its voters gave the reviewer's label.
        "relabeled": expect(
            0.83, {"state": "relabeled", "decided_by": "rita", "label_after": "8"}, 0.0
        ),
        # Sent back: no label now, so nothing to qualify; its votes are on record, discarded.
        "sent_back": None,
    }
    by_name = {i["original_name"]: i for i in data["images"]}
    assert by_name["relabeled.png"]["consensus_label"] == "8"
    assert [(a["user"], a["source"]) for a in by_name["relabeled.png"]["annotations"]] == [
        ("bob", "manual"),
        ("rita", "review"),
    ]
    assert [(a["user"], a["discarded"]) for a in by_name["sent_back.png"]["annotations"]] == [
        ("bob", True)
    ]


def test_a_label_reports_its_open_review_else_its_latest(reviewed, as_user, alice, bob):
    project, images = reviewed
    again = images["sent_back"]
    label(again, bob, "5")  # bob votes afresh on the image sent back: labeled again

    def quality() -> dict:
        data = json.loads(export(as_user(alice), project, "json"))
        (image,) = [i for i in data["images"] if i["id"] == again.pk]
        return image["quality"]

    assert quality()["suspect_score"] == 0.94  # the send-back is its latest review
    assert quality()["review"] == {"state": "sent_back", "decided_by": "rita", "label_after": None}
    reviews_open(project=project, run_id=9, suspects=[Suspect(again.pk, 0.5, "5", "3", 0.6)])
    assert quality()["suspect_score"] == 0.5
    assert quality()["review"] == {"state": "open", "decided_by": None, "label_after": None}


def test_csv_export_carries_the_quality_columns_last(reviewed, as_user, alice):
    project, _images = reviewed
    rows = list(csv.DictReader(io.StringIO(export(as_user(alice), project, "csv").decode())))
    columns = list(rows[0])
    assert columns[-6:] == [
        "suspect_score",
        "review_state",
        "reviewed_by",
        "review_label_after",
        "consensus_method",
        "consensus_confidence",
    ]
    got = {
        row["original_name"]: tuple(row[c] for c in columns[-6:])
        for row in rows
        if row["original_name"] != "clean.png"
    }
    assert got == {
        "open.png": ("0.61", "open", "", "", "majority", "1.0"),
        "confirmed.png": ("0.72", "confirmed", "rita", "", "majority", "1.0"),
        "relabeled.png": ("0.83", "relabeled", "rita", "8", "majority", "0.0"),
        "sent_back.png": ("", "", "", "", "", ""),
    }
