"""Ingest: every accepted format, every kind of bad input, mixed batches, deduplication,
labels from manifests and folders, and no row without its file nor file without its row."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.db import connection
from PIL import Image as PILImage

from labeling.annotations.models import Annotation, AnnotationSource
from labeling.images.models import Image, ImageStatus
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import file_source, folder_sources, zip_sources
from tests.factories import png_bytes
from tests.labeling.images.helpers import encode, make_zip, media_files, sample, upload

pytestmark = pytest.mark.django_db


def post(client, project, *files, **data):
    return client.post(
        f"/api/projects/{project.id}/images/",
        {"files": list(files), **data},
        format="multipart",
    )


def by_name(response) -> dict[str, dict]:
    return {row["name"]: row for row in response.json()["results"]}


def gif_two_frames() -> bytes:
    first, second = sample(1, "P"), sample(2, "P")
    out = io.BytesIO()
    first.save(out, format="GIF", save_all=True, append_images=[second])
    return out.getvalue()


FORMATS = {
    "a.png": (lambda: png_bytes(1), "PNG"),
    "b.jpg": (lambda: encode(sample(2), "JPEG", quality=90), "JPEG"),
    "c.webp": (lambda: encode(sample(3), "WEBP"), "WEBP"),
    "d.bmp": (lambda: encode(sample(4), "BMP"), "BMP"),
    "e.gif": (gif_two_frames, "GIF"),
    "f.tif": (lambda: encode(sample(6), "TIFF"), "TIFF"),
}


def test_every_supported_format_is_stored_with_its_metadata(as_user, alice, project, _image_store):
    files = [upload(name, make()) for name, (make, _) in FORMATS.items()]
    response = post(as_user(alice), project, *files)
    assert response.status_code == 201, response.content
    results = by_name(response)
    assert {r["status"] for r in results.values()} == {"created"}
    for name, (_, fmt) in FORMATS.items():
        image = Image.objects.get(pk=results[name]["image"])
        assert image.format == fmt
        assert (image.width, image.height) == (32, 32) or fmt == "PNG"
        assert (_image_store / image.storage_key).read_bytes()[:4] != b""
    assert len(media_files(_image_store)) == len(FORMATS)


BAD_FILES = {
    "notes.txt": (b"hello, I am not an image", "not a recognised image"),
    "empty.png": (b"", "empty file"),
    "truncated.png": (png_bytes(9, size=64)[:-60], "truncated or corrupt"),
    "header-only.jpg": (encode(sample(5, size=64), "JPEG")[:200], "truncated or corrupt"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_rejected_with_a_reason_and_good_ones_kept(
    as_user, alice, project, _image_store, name
):
    data, reason = BAD_FILES[name]
    response = post(as_user(alice), project, upload(name, data), upload("good.png", png_bytes(1)))
    assert response.status_code == 201
    results = by_name(response)
    assert results[name]["status"] == "rejected"
    assert reason in results[name]["reason"]
    assert results["good.png"]["status"] == "created"
    assert Image.objects.count() == 1
    assert len(media_files(_image_store)) == 1


def test_a_file_over_the_byte_limit_is_rejected(as_user, alice, project, settings):
    settings.LABELLOOP_MAX_IMAGE_BYTES = 1000
    big = png_bytes(3, size=200)
    assert len(big) > 1000
    response = post(as_user(alice), project, upload("big.png", big))
    assert response.status_code == 200
    row = by_name(response)["big.png"]
    assert row["status"] == "rejected"
    assert "1,000 byte limit" in row["reason"]


def test_a_decompression_bomb_is_rejected_before_decoding(as_user, alice, project):
    # 20,000 x 20,000 one-bit pixels compress to a few kB but would decode to 400 megapixels.
    bomb = encode(PILImage.new("1", (20_000, 20_000)), "PNG")
    assert len(bomb) < 200_000
    response = post(as_user(alice), project, upload("bomb.png", bomb))
    row = by_name(response)["bomb.png"]
    assert row["status"] == "rejected"
    assert "pixel limit" in row["reason"]
    assert Image.objects.count() == 0


def test_a_zip_with_parent_paths_is_rejected_per_member(as_user, alice, project, _image_store):
    archive = make_zip({"../../evil.png": png_bytes(1), "ok/fine.png": png_bytes(2)})
    response = post(as_user(alice), project, upload("batch.zip", archive))
    results = by_name(response)
    assert results["batch.zip/../../evil.png"]["status"] == "rejected"
    assert "unsafe path" in results["batch.zip/../../evil.png"]["reason"]
    assert results["batch.zip/ok/fine.png"]["status"] == "created"
    assert not (_image_store.parent / "evil.png").exists()
    assert Image.objects.count() == 1


def test_a_zip_bomb_is_rejected_without_inflating_it(as_user, alice, project):
    # 200 MB of zeros deflate to ~200 kB: a ratio of ~1000:1.
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("zeros.png", "w", force_zip64=True) as member:
            chunk = bytes(1024 * 1024)
            for _ in range(200):
                member.write(chunk)
        archive.writestr("real.png", png_bytes(4))
    response = post(as_user(alice), project, upload("bomb.zip", out.getvalue()))
    results = by_name(response)
    assert results["bomb.zip/zeros.png"]["status"] == "rejected"
    assert "byte limit" in results["bomb.zip/zeros.png"]["reason"]
    assert results["bomb.zip/real.png"]["status"] == "created"


def test_a_zip_whose_total_expansion_is_too_large_is_rejected_whole(
    as_user, alice, project, settings
):
    settings.LABELLOOP_MAX_ARCHIVE_BYTES = 10_000
    archive = make_zip({f"{i}.png": png_bytes(i, size=60) for i in range(5)})
    response = post(as_user(alice), project, upload("big.zip", archive))
    row = by_name(response)["big.zip"]
    assert row["status"] == "rejected"
    assert "zip bomb" in row["reason"]
    assert Image.objects.count() == 0


def test_a_high_ratio_member_is_flagged_as_a_zip_bomb():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flat.bmp", bytes(5 * 1024 * 1024))
    out.seek(0)
    limits = ingest_limits()
    (entry,) = list(zip_sources(out, archive_name="x.zip", limits=limits))
    assert "zip bomb" in entry.reason


def test_a_corrupt_zip_is_rejected_and_the_rest_of_the_request_is_stored(as_user, alice, project):
    response = post(
        as_user(alice),
        project,
        upload("broken.zip", b"PK\x03\x04 definitely not a zip"),
        upload("ok.png", png_bytes(7)),
    )
    results = by_name(response)
    assert results["broken.zip"]["status"] == "rejected"
    assert "zip" in results["broken.zip"]["reason"]
    assert results["ok.png"]["status"] == "created"


def test_importing_the_same_zip_twice_creates_nothing_the_second_time(
    as_user, alice, project, _image_store
):
    archive = make_zip({f"d/{i}.png": png_bytes(i) for i in range(12)})
    first = post(as_user(alice), project, upload("set.zip", archive))
    assert first.json()["summary"] == {"created": 12, "duplicate": 0, "rejected": 0}
    files_before = media_files(_image_store)
    second = post(as_user(alice), project, upload("set.zip", archive))
    assert second.status_code == 200
    assert second.json()["summary"] == {"created": 0, "duplicate": 12, "rejected": 0}
    assert Image.objects.count() == 12
    assert media_files(_image_store) == files_before


def test_duplicates_within_one_request_are_stored_once(as_user, alice, project):
    response = post(
        as_user(alice), project, upload("a.png", png_bytes(1)), upload("copy.png", png_bytes(1))
    )
    results = by_name(response)
    assert results["a.png"]["status"] == "created"
    assert results["copy.png"]["status"] == "duplicate"
    assert results["copy.png"]["image"] == results["a.png"]["image"]


def test_the_same_file_in_two_projects_is_one_stored_object(as_user, alice, project, _image_store):
    from tests.factories import ProjectFactory

    other = ProjectFactory()
    from labeling.projects.models import Membership, Role

    Membership.objects.create(project=other, user=alice, role=Role.ADMIN)
    post(as_user(alice), project, upload("a.png", png_bytes(1)))
    response = post(as_user(alice), other, upload("a.png", png_bytes(1)))
    assert by_name(response)["a.png"]["status"] == "created"
    assert Image.objects.count() == 2
    assert len(media_files(_image_store)) == 1


def test_a_csv_manifest_brings_labels_in_as_annotations(as_user, alice, project):
    archive = make_zip({"x/one.png": png_bytes(1), "x/two.png": png_bytes(2)})
    manifest = b"filename,label\none.png,1\nx/two.png,2\n"
    response = post(
        as_user(alice), project, upload("set.zip", archive), labels=upload("labels.csv", manifest)
    )
    results = by_name(response)
    assert results["set.zip/x/one.png"]["label"] == "1"
    image = Image.objects.get(pk=results["set.zip/x/two.png"]["image"])
    assert image.status == ImageStatus.LABELED
    assert image.consensus_label == "2"
    annotation = Annotation.objects.get(image=image)
    assert (annotation.label, annotation.source, annotation.annotator) == (
        "2",
        AnnotationSource.IMPORT,
        alice,
    )


def test_a_json_manifest_is_accepted(as_user, alice, project):
    manifest = b'[{"filename": "a.png", "label": "3"}]'
    response = post(
        as_user(alice),
        project,
        upload("a.png", png_bytes(1)),
        upload("b.png", png_bytes(2)),
        labels=upload("labels.json", manifest),
    )
    results = by_name(response)
    assert results["a.png"]["label"] == "3"
    assert results["b.png"]["label"] is None
    assert Image.objects.get(pk=results["b.png"]["image"]).status == ImageStatus.UNLABELED


@pytest.mark.parametrize("debug", [False, True])
def test_a_json_manifest_nested_1000_deep_is_a_400_naming_the_limit(
    as_user, alice, project, settings, debug
):
    settings.DEBUG = debug
    deep = b"[" * 1000 + b"]" * 1000
    response = post(
        as_user(alice), project, upload("a.png", png_bytes(1)), labels=upload("l.json", deep)
    )
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "too_deep"
    assert "label manifest 'l.json'" in error["message"]
    assert "deeper than the limit of 32 levels" in error["message"]
    assert not Image.objects.exists()


def test_an_unknown_label_in_a_manifest_rejects_that_file_only(as_user, alice, project):
    manifest = b"a.png,cat\nb.png,4\n"
    response = post(
        as_user(alice),
        project,
        upload("a.png", png_bytes(1)),
        upload("b.png", png_bytes(2)),
        labels=upload("labels.csv", manifest),
    )
    results = by_name(response)
    assert results["a.png"]["status"] == "rejected"
    assert "'cat' is not one of the project's classes" in results["a.png"]["reason"]
    assert results["b.png"]["status"] == "created"
    assert Annotation.objects.count() == 1


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'[{"file": "a.png"}]', "needs 'filename' and 'label'"),
        (b"a.png\n", "needs a filename and a label"),
        (b"a.png,1\na.png,2\n", "two labels"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_a_malformed_manifest_is_a_400_and_stores_nothing(
    as_user, alice, project, _image_store, manifest, message
):
    response = post(
        as_user(alice),
        project,
        upload("a.png", png_bytes(1)),
        labels=upload("labels.csv", manifest),
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["message"]
    assert Image.objects.count() == 0
    assert media_files(_image_store) == []


def test_an_imagefolder_zip_labels_images_by_their_folder(as_user, alice, project):
    archive = make_zip(
        {
            "train/3/a.png": png_bytes(1),
            "train/7/b.png": png_bytes(2),
            "train/dog/c.png": png_bytes(3),
        }
    )
    response = post(as_user(alice), project, upload("f.zip", archive), layout="imagefolder")
    results = by_name(response)
    assert results["f.zip/train/3/a.png"]["label"] == "3"
    assert results["f.zip/train/7/b.png"]["label"] == "7"
    assert results["f.zip/train/dog/c.png"]["status"] == "rejected"
    assert "'dog'" in results["f.zip/train/dog/c.png"]["reason"]
    assert sorted(Image.objects.values_list("consensus_label", flat=True)) == ["3", "7"]


def test_an_upload_without_files_is_a_400(as_user, alice, project):
    response = as_user(alice).post(
        f"/api/projects/{project.id}/images/", {"layout": "flat"}, format="multipart"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "no_files"


def test_an_unknown_layout_is_a_400(as_user, alice, project):
    response = post(as_user(alice), project, upload("a.png", png_bytes(1)), layout="nested")
    assert response.status_code == 400
    assert "layout" in response.json()["error"]["message"]


def test_a_database_failure_leaves_no_rows_and_no_orphan_files(alice, project, _image_store):
    """A real PostgreSQL error mid-batch (a trigger refuses one row) rolls the batch back and
    removes the files it had written."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
            BEGIN
              IF NEW.original_name = 'poison.png' THEN
                RAISE EXCEPTION 'disk full (simulated)';
              END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON images_image
              FOR EACH ROW EXECUTE FUNCTION refuse_poison();
            """
        )
    limits = ingest_limits()
    sources = [
        file_source(io.BytesIO(png_bytes(i)), name=name, max_bytes=limits.max_bytes)
        for i, name in enumerate(["a.png", "poison.png", "c.png"])
    ]
    with pytest.raises(Exception, match="disk full"):
        images_ingest(project=project, user=alice, sources=sources)
    assert Image.objects.count() == 0
    assert media_files(_image_store) == []


def test_a_folder_import_reads_nested_folders_and_zips(alice, project, tmp_path):
    root = tmp_path / "incoming"
    (root / "3").mkdir(parents=True)
    (root / "3" / "a.png").write_bytes(png_bytes(1))
    (root / "7").mkdir()
    (root / "7" / "b.png").write_bytes(png_bytes(2))
    (root / "more.zip").write_bytes(make_zip({"5/c.png": png_bytes(3)}))
    (root / ".DS_Store").write_bytes(b"junk")
    report = images_ingest(
        project=project,
        user=alice,
        sources=folder_sources(root, limits=ingest_limits()),
        labels_from_folders=True,
    )
    assert report.summary == {"created": 3, "duplicate": 0, "rejected": 0}
    assert sorted(r.label for r in report.results) == ["3", "5", "7"]


def test_a_large_import_uses_batched_queries(alice, project, django_assert_max_num_queries):
    limits = ingest_limits()
    sources = [
        file_source(io.BytesIO(png_bytes(i)), name=f"{i}.png", max_bytes=limits.max_bytes)
        for i in range(600)
    ]
    # 600 images in batches of 256: three batches of (existing-check, insert, annotations)
    # plus transaction bookkeeping; one query per image would be 600+.
    with django_assert_max_num_queries(20):
        report = images_ingest(project=project, user=alice, sources=sources)
    assert report.summary["created"] == 600


def test_an_unwritable_image_store_rejects_the_files_and_stores_no_rows(
    as_user, alice, project, settings, tmp_path
):
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the store's folder should be")
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(blocked)},
        },
    }
    response = post(as_user(alice), project, upload("a.png", png_bytes(1)))
    assert response.status_code == 200
    row = by_name(response)["a.png"]
    assert row["status"] == "rejected"
    assert "could not write to the image store" in row["reason"]
    assert Image.objects.count() == 0
