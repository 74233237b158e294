"""``manage.py export``: files, stdout, progress on stderr, clear errors."""

from __future__ import annotations

import csv
import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command

from labeling.exports import selectors

pytestmark = pytest.mark.django_db


def export(*args: str) -> str:
    """Run the command; return what it wrote to stderr."""
    err = io.StringIO()
    call_command("export", *args, stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def test_export_writes_a_csv_file_and_reports_progress_on_stderr(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(selectors, "CHUNK_SIZE", 2)
    out = tmp_path / "digits.csv"
    err = export(
        "--project", "digits", "--format", "csv", "--out", str(out), "--progress-every", "2"
    )
    rows = list(csv.DictReader(out.open()))
    assert [int(r["id"]) for r in rows] == sorted(i.id for i in exported.images.values())
    assert rows[0]["model_version"] == str(exported.v2.number)
    lines = err.splitlines()
    assert lines[:2] == ["digits: 2 images exported", "digits: 4 images exported"]
    assert lines[2].startswith(f"exported 5 images of digits as csv to {out}")
    assert not list(tmp_path.glob(".*.part"))  # the temporary file was renamed


def test_export_takes_the_project_id_and_the_api_filters(exported, tmp_path):
    out = tmp_path / "labeled.json"
    pid = str(exported.project.id)
    export("--project", pid, "--out", str(out), "--labeled", "--no-predictions")
    data = json.loads(out.read_text())
    assert data["filters"] == {"labeled": True, "predictions": False}
    assert [i["consensus_label"] for i in data["images"]] == ["3", "7"]
    assert all("prediction" not in image for image in data["images"])


def test_export_writes_an_imagefolder_zip(exported, tmp_path):
    out = tmp_path / "digits.zip"
    export("--project", "digits", "--format", "imagefolder", "--out", str(out))
    with zipfile.ZipFile(out) as archive:
        assert [name.split("/")[0] for name in archive.namelist()] == ["3", "7"]
        assert archive.testzip() is None


def test_export_goes_to_stdout_without_out(exported, capsysbinary):
    export("--project", "digits", "--format", "csv", "--progress-every", "0")
    captured = capsysbinary.readouterr()
    assert captured.out.startswith(b"id,original_name,sha256,")
    assert len(captured.out.splitlines()) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--project", "nope"], "no project with slug or id 'nope'"),
        (["--project", "digits", "--format", "imagefolder", "--predictions"], "imagefolder"),
        (["--project", "digits", "--out", "/nonexistent/dir/x.json"], "is not a folder"),
        (["--project", "digits", "--progress-every", "-1"], "--progress-every"),
    ],
)
def test_export_fails_clearly_on_bad_arguments(exported, args, message):
    with pytest.raises(CommandError, match=message):
        export(*args)
