"""An export is one snapshot: what lands while it streams (uploads, labels) neither shows up
halfway through nor changes what was already written."""

from __future__ import annotations

import csv
import io
import json
import threading
import uuid

import pytest
from django.db import connection

from labeling.annotations.services import annotation_submit
from labeling.exports import selectors
from labeling.exports.services import export_options_parse, export_stream
from labeling.images.models import Image
from tests.factories import ImageFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the export and the writer: two sessions


def in_another_session(work) -> None:
    """Run `work` on its own connection and commit it, as a concurrent request would."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the test's thread
            failure.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    if failure:
        raise failure[0]


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_changes_committed_while_an_export_streams_are_not_in_it(fmt, project, bob, monkeypatch):
    monkeypatch.setattr(selectors, "CHUNK_SIZE", 2)  # six images: three chunks
    project.retrain_every = 0
    project.save()
    images = [ImageFactory(project=project, original_name=f"{i}.png", seed=i) for i in range(6)]
    stream = export_stream(project=project, options=export_options_parse(params={"format": fmt}))
    out = [next(stream)]  # the export has begun: its first rows are out

    def meanwhile() -> None:
        ImageFactory(project=project, original_name="late.png", seed=99)
        last = Image.objects.select_related("project").get(pk=images[-1].pk)
        annotation_submit(image=last, user=bob, label="4", client_id=uuid.uuid4())

    in_another_session(meanwhile)
    out.extend(stream)
    text = b"".join(out).decode()
    if fmt == "json":
        data = json.loads(text)
        names = [i["original_name"] for i in data["images"]]
        assert data["image_count"] == 6
        labels = [i["consensus_label"] for i in data["images"]]
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        names = [r["original_name"] for r in rows]
        labels = [r["consensus_label"] or None for r in rows]
    assert names == [f"{i}.png" for i in range(6)]  # no late.png
    assert labels == [None] * 6  # the label that landed meanwhile is not half in
    # Both changes did commit: the next export has them.
    again = json.loads(
        b"".join(
            export_stream(project=project, options=export_options_parse(params={"format": "json"}))
        )
    )
    assert again["image_count"] == 7
    assert again["images"][5]["consensus_label"] == "4"
