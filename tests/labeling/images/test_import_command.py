"""``manage.py import_images`` and ``manage.py demo``."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from labeling.images.models import Image
from tests.factories import png_bytes
from tests.labeling.images.helpers import make_zip

pytestmark = pytest.mark.django_db


def test_import_images_reads_a_folder_with_labels_and_reports_rejections(project, tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(5):
        (tmp_path / "in" / f"{i}.png").write_bytes(png_bytes(i))
    (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG nope")
    (tmp_path / "labels.csv").write_text("filename,label\n0.png,0\n1.png,1\n")
    out = io.StringIO()
    call_command(
        "import_images",
        str(tmp_path / "in"),
        "--project",
        "digits",
        "--labels",
        str(tmp_path / "labels.csv"),
        "--quiet-progress",
        stdout=out,
    )
    text = out.getvalue()
    assert "5 created, 0 duplicate, 1 rejected" in text
    assert "rejected broken.png: not a recognised image" in text
    assert Image.objects.filter(project=project, consensus_label__isnull=False).count() == 2


def test_import_images_twice_from_a_zip_says_duplicate(project, tmp_path):
    archive = tmp_path / "set.zip"
    archive.write_bytes(make_zip({f"{i}.png": png_bytes(i) for i in range(4)}))
    args = [str(archive), "--project", "digits", "--quiet-progress"]
    call_command("import_images", *args, stdout=io.StringIO())
    out = io.StringIO()
    call_command("import_images", *args, stdout=out)
    assert "0 created, 4 duplicate, 0 rejected" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent", "--project", "digits"], "does not exist"),
        (["{tmp}", "--project", "nope"], "no project with slug"),
        (["{tmp}", "--project", "digits", "--user", "ghost"], "no user named"),
        (["{tmp}", "--project", "digits", "--labels", "{tmp}/missing.csv"], "cannot read"),
    ],
)
def test_import_images_fails_clearly_on_bad_arguments(project, tmp_path, args, message):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("import_images", *args, "--quiet-progress", stdout=io.StringIO())


def test_the_demo_sets_up_mnist_once_and_reuses_it(settings, tmp_path):
    settings.DATA_DIR = tmp_path
    settings.STATIC_ROOT = tmp_path / "static"
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    assert "project 'MNIST digits' with 5000 images" in out.getvalue()
    assert "admin / labelloop-admin" in out.getvalue()
    call_command("demo", "--no-serve", stdout=io.StringIO())
    assert Image.objects.filter(project__slug="mnist-digits").count() == 5000
    assert len(list((tmp_path / "demo" / "mnist").glob("*.png"))) == 5000
