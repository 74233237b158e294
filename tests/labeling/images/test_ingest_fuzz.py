"""Hypothesis against the ingest path: hostile images and hostile zip archives.

Run: ``LABELLOOP_DATA_DIR=var/test-security .venv/bin/python -m pytest
tests/labeling/images/test_ingest_fuzz.py -q``

Whatever arrives, ``images_ingest`` answers every source with created / duplicate / rejected
(no exception escapes), and the store stays sound: every row's file exists, has the row's
SHA-256, re-opens with Pillow and passes ``verify()``; every file under ``images/`` has a
row. The pixel limit is lowered to 64x64 so that a "decompression bomb" costs the test
milliseconds, not gigabytes.
"""

from __future__ import annotations

import hashlib
import io
import stat
import struct
import zipfile
import zlib

import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image as PILImage

from labeling.images.models import Image
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import file_source, zip_sources
from tests.factories import png_bytes

pytestmark = pytest.mark.django_db

MAX_PIXELS = 64 * 64
MAX_BYTES = 256 * 1024
FUZZ = hypothesis_settings(
    max_examples=120,
    deadline=None,
    derandomize=True,  # the same inputs every run: a failure is reproducible
    database=None,
    # The DB and the image store are shared by all examples on purpose: the invariants
    # must hold for the accumulated store, duplicates across examples included.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

FORMATS = ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]
MAGIC = {
    "PNG": b"\x89PNG\r\n\x1a\n",
    "JPEG": b"\xff\xd8\xff\xe0",
    "GIF": b"GIF89a",
    "BMP": b"BM",
    "TIFF": b"II*\x00",
    "WEBP": b"RIFF\x00\x00\x00\x00WEBPVP8 ",
}


@pytest.fixture
def limits(settings):
    settings.LABELLOOP_MAX_IMAGE_PIXELS = MAX_PIXELS
    settings.LABELLOOP_MAX_IMAGE_BYTES = MAX_BYTES
    return ingest_limits()


def encoded(fmt: str, seed: int, width: int, height: int) -> bytes:
    image = PILImage.open(io.BytesIO(png_bytes(seed, size=max(width, height), mode="RGB")))
    image = image.crop((0, 0, width, height))
    if fmt == "GIF":
        image = image.convert("P")
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_declaring(width: int, height: int, idat: bytes) -> bytes:
    """A PNG whose header claims any size, with valid CRCs, and whatever pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        MAGIC["PNG"]
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def gif_declaring(width: int, height: int, rest: bytes) -> bytes:
    return MAGIC["GIF"] + struct.pack("<HH", width, height) + b"\x00\x00\x00" + rest


def bmp_declaring(width: int, height: int, rest: bytes) -> bytes:
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + len(rest), 0, 0, 54) + info + rest


sizes = st.integers(min_value=1, max_value=48)
formats = st.sampled_from(FORMATS)
valid_images = st.builds(encoded, formats, st.integers(0, 10**6), sizes, sizes)


@st.composite
def truncated(draw) -> bytes:
    data = draw(valid_images)
    return data[: draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))]


@st.composite
def bit_flipped(draw) -> bytes:
    data = bytearray(draw(valid_images))
    for _ in range(draw(st.integers(1, 8))):
        data[draw(st.integers(0, len(data) - 1))] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@st.composite
def magic_then_noise(draw) -> bytes:
    return MAGIC[draw(formats)] + draw(st.binary(max_size=2048))


huge = st.integers(min_value=65, max_value=2**31 - 1)
declared_huge = st.one_of(
    st.builds(png_declaring, huge, huge, st.binary(max_size=64)),
    st.builds(gif_declaring, *[st.integers(65, 65535)] * 2, st.binary(max_size=64)),
    st.builds(bmp_declaring, huge, huge, st.binary(max_size=64)),
    # A real image just over the pixel limit: a decompression bomb, scaled down.
    st.builds(encoded, formats, st.integers(0, 10**6), st.just(65), st.integers(64, 80)),
)

hostile_images = st.one_of(
    valid_images,
    truncated(),
    bit_flipped(),
    magic_then_noise(),
    declared_huge,
    st.just(b""),
    st.binary(max_size=512),
    st.builds(lambda data: data + b"\x00" * (MAX_BYTES + 1 - len(data)), valid_images),
)


def assert_store_is_sound(media_root) -> None:
    """Every row's file is there, matches its hash and dimensions, and verifies; every
    stored file has a row."""
    rows = list(Image.objects.values("storage_key", "sha256", "width", "height", "format"))
    files = {
        p.relative_to(media_root).as_posix()
        for p in (media_root / "images").rglob("*")
        if p.is_file()
    }
    assert {row["storage_key"] for row in rows} == files
    for row in rows:
        data = (media_root / row["storage_key"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"]
        with PILImage.open(io.BytesIO(data)) as image:
            assert image.format == row["format"]
            assert image.size == (row["width"], row["height"])
            assert row["width"] * row["height"] <= MAX_PIXELS
            image.verify()


def assert_every_source_answered(report, expected: int) -> None:
    assert len(report.results) == expected
    for result in report.results:
        # What the generated inputs exercised: --hypothesis-show-statistics lists these.
        event(f"{result.status}: {(result.reason or '').split('(')[0][:40]}")
        assert result.status in {"created", "duplicate", "rejected"}
        if result.status == "rejected":
            assert result.reason, result
        else:
            assert result.image_id is not None


@FUZZ
@given(blobs=st.lists(hostile_images, min_size=1, max_size=6))
def test_hostile_image_files_are_answered_and_never_stored_invalid(
    blobs, project, alice, limits, _image_store
):
    sources = [
        file_source(io.BytesIO(blob), name=f"f{i}.png", max_bytes=limits.max_bytes)
        for i, blob in enumerate(blobs)
    ]
    report = images_ingest(project=project, user=alice, sources=sources)
    assert_every_source_answered(report, len(blobs))
    # Answers come in batches (rejections at once, stored files per batch): match by name.
    answers = {result.name: result for result in report.results}
    for i, blob in enumerate(blobs):
        if not blob:
            assert answers[f"f{i}.png"].reason == "empty file"
    assert_store_is_sound(_image_store)


SYMLINK = (stat.S_IFLNK | 0o777) << 16
member_names = st.one_of(
    st.sampled_from(
        [
            "a.png",
            "dir/b.png",
            "../x.png",
            "dir/../../x.png",
            "/etc/passwd",
            "/abs.png",
            "C:\\win.png",
            "dir\\b.png",
            "inner.zip",
            "__MACOSX/._a.png",
            ".hidden.png",
            "a.png",  # the same name again: zip allows duplicates
        ]
    ),
    st.text(min_size=1, max_size=30).filter(lambda n: "\x00" not in n),
)


@st.composite
def archives(draw) -> tuple[bytes, set[str]]:
    """A zip of hostile members (bad paths, symlinks, nested zips, duplicates, bombs),
    possibly truncated. Returns the bytes and the names written only as symbolic links."""
    out = io.BytesIO()
    links: set[str] = set()
    others: set[str] = set()
    count = draw(st.integers(0, 5))
    with zipfile.ZipFile(out, "w") as archive:
        for _ in range(count):
            name = draw(member_names)
            kind = draw(st.sampled_from(["image", "image", "symlink", "bomb", "nested"]))
            if kind == "nested" and draw(st.booleans()):
                name = f"{name}.zip"
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            (links if kind == "symlink" else others).add(name)
            if kind == "symlink":
                info.external_attr = SYMLINK
                # A link "to" a path, or one whose stored target happens to be image bytes.
                data = draw(st.sampled_from([b"/etc/passwd", b"../../x.png", png_bytes(7)]))
            elif kind == "bomb":
                # 2 MiB of zeros deflate ~1000:1, far past the compression ratio limit.
                data = b"\x00" * (2 * 1024 * 1024)
            elif kind == "nested":
                inner = io.BytesIO()
                with zipfile.ZipFile(inner, "w") as nested:
                    nested.writestr("deep.png", png_bytes(draw(st.integers(0, 10**6))))
                data = inner.getvalue()
            else:
                data = draw(st.one_of(valid_images, hostile_images))
            with _duplicates_allowed():
                archive.writestr(info, data)
    data = out.getvalue()
    if draw(st.integers(0, 3)) == 0:  # a quarter of the archives cut short
        data = data[: draw(st.integers(0, len(data)))]
    return data, links - others


class _duplicates_allowed:
    """zipfile warns on a duplicate member name; writing one is the point here."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", UserWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


@FUZZ
@given(archive=archives())
def test_hostile_zip_archives_are_answered_and_never_stored_invalid(
    archive, project, alice, limits, settings, _image_store
):
    # Members up to 4 MiB, so a bomb meets the compression-ratio check, not the byte limit.
    settings.LABELLOOP_MAX_IMAGE_BYTES = 4 * 1024 * 1024
    limits = ingest_limits()
    data, links = archive
    report = images_ingest(
        project=project,
        user=alice,
        sources=zip_sources(io.BytesIO(data), archive_name="up.zip", limits=limits),
    )
    for result in report.results:
        event(f"{result.status}: {(result.reason or '').split('(')[0][:40]}")
        assert result.status in {"created", "duplicate", "rejected"}
        assert result.status != "rejected" or result.reason
        inner = result.name.removeprefix("up.zip/")
        if result.status != "rejected":
            # Only safe, plain, non-archive members are ever read.
            assert not inner.startswith(("/", "\\")) and "\\" not in inner
            assert ".." not in inner.split("/")
            assert not inner.lower().endswith(".zip")
            assert inner not in links
    assert_store_is_sound(_image_store)
