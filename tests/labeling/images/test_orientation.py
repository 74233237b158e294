"""EXIF orientation is applied once, at ingest: the stored image is the upright one, so the
API's size, the file the UI shows (and its thumbnails), exports and training all see the same
picture (issue 26, finding 7)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import ExifTags, ImageOps
from PIL import Image as PILImage

from labeling.core.storage import storage_open
from labeling.images.models import Image
from tests.labeling.images.helpers import post_files, upload
from training.data import decode_image

pytestmark = pytest.mark.django_db

ORIENTATION = ExifTags.Base.Orientation


def sideways_jpeg(orientation: int = 6) -> bytes:
    """A 60x20 JPEG as a phone stores it: the sensor's pixels, and an EXIF tag saying how to
    turn them (6: rotate 90 degrees clockwise to view, so it is 20 wide and 60 high)."""
    image = PILImage.new("RGB", (60, 20), (230, 30, 30))
    image.paste((30, 30, 230), (0, 0, 15, 20))  # a blue band at the sensor's left edge
    exif = PILImage.Exif()
    exif[ORIENTATION] = orientation
    exif[ExifTags.Base.Make] = "ExamplePhone"
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92, exif=exif.tobytes())
    return out.getvalue()


def stored_bytes(image_id: int) -> bytes:
    with storage_open(key=Image.objects.get(pk=image_id).storage_key) as handle:
        return handle.read()


def test_an_upload_with_orientation_6_is_reported_upright(alice, as_user, project):
    ids = post_files(as_user(alice), project, **{"phone.jpg": sideways_jpeg()})
    detail = as_user(alice).get(f"/api/images/{ids['phone.jpg']}/").json()
    assert (detail["width"], detail["height"]) == (20, 60)


def test_the_stored_file_is_the_upright_picture_with_no_orientation_left(alice, as_user, project):
    original = sideways_jpeg()
    ids = post_files(as_user(alice), project, **{"phone.jpg": original})
    served = as_user(alice).get(f"/api/images/{ids['phone.jpg']}/file/")
    data = b"".join(served.streaming_content) if served.streaming else served.content
    assert data == stored_bytes(ids["phone.jpg"])
    with PILImage.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.size == (20, 60)
        exif = image.getexif()
        assert exif.get(ORIENTATION, 1) == 1
        assert exif.get(ExifTags.Base.Make) == "ExamplePhone"  # the rest of the EXIF stays
        pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    with PILImage.open(io.BytesIO(original)) as image:
        expected = np.asarray(ImageOps.exif_transpose(image).convert("RGB"), dtype=np.int16)
    assert np.abs(pixels - expected).mean() < 3  # the same picture, give or take JPEG
    assert pixels[0, :, 2].mean() > 150  # the blue band is now along the top edge


def test_training_sees_the_same_picture_as_the_api_and_the_ui(alice, as_user, project):
    original = sideways_jpeg()
    ids = post_files(as_user(alice), project, **{"phone.jpg": original})
    stored = decode_image(stored_bytes(ids["phone.jpg"]), size=60, channels=3)
    direct = decode_image(original, size=60, channels=3)  # predict uploads are never stored
    assert stored.shape == (3, 60, 60)
    assert np.abs(stored.astype(int) - direct.astype(int)).mean() < 3
    # Letterboxed 20x60 -> 60x60: the picture is tall, padding left and right, blue on top.
    assert stored[2, 0, 30] > 150 and stored[0, 59, 30] > 150


@pytest.mark.parametrize("orientation", [2, 3, 4, 5, 7, 8])
def test_every_orientation_is_stored_upright(alice, as_user, project, orientation):
    ids = post_files(as_user(alice), project, **{"phone.jpg": sideways_jpeg(orientation)})
    row = Image.objects.get(pk=ids["phone.jpg"])
    turned = orientation >= 5  # 5-8 swap width and height
    assert (row.width, row.height) == ((20, 60) if turned else (60, 20))
    with PILImage.open(io.BytesIO(stored_bytes(row.pk))) as image:
        assert image.size == (row.width, row.height)
        assert image.getexif().get(ORIENTATION, 1) == 1


def test_the_same_sideways_photo_uploaded_twice_is_a_duplicate(alice, as_user, project):
    client = as_user(alice)
    first = post_files(client, project, **{"a.jpg": sideways_jpeg()})
    response = client.post(
        f"/api/projects/{project.id}/images/",
        {"files": [upload("again.jpg", sideways_jpeg())]},
        format="multipart",
    )
    (result,) = response.json()["results"]
    assert (result["status"], result["image"]) == ("duplicate", first["a.jpg"])


def test_an_upright_jpeg_is_stored_byte_for_byte(alice, as_user, project):
    image = PILImage.new("RGB", (30, 10), (10, 200, 10))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    ids = post_files(as_user(alice), project, **{"plain.jpg": out.getvalue()})
    assert stored_bytes(ids["plain.jpg"]) == out.getvalue()


def test_a_png_with_an_orientation_is_turned_without_loss(alice, as_user, project):
    image = PILImage.new("RGB", (6, 2))
    image.putdata([(i * 20, 255 - i * 20, i) for i in range(12)])
    exif = PILImage.Exif()
    exif[ORIENTATION] = 8  # rotate 90 degrees counter-clockwise to view
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif.tobytes())
    ids = post_files(as_user(alice), project, **{"turned.png": out.getvalue()})
    with PILImage.open(io.BytesIO(stored_bytes(ids["turned.png"]))) as stored:
        assert stored.format == "PNG" and stored.size == (2, 6)
        assert list(stored.getdata()) == list(
            image.transpose(PILImage.Transpose.ROTATE_90).getdata()
        )
