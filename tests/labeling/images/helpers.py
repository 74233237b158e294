from __future__ import annotations

import io
import zipfile

from PIL import Image as PILImage

from tests.factories import png_bytes


def encode(image: PILImage.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **params)
    return out.getvalue()


def sample(seed: int, mode: str = "RGB", size: int = 32) -> PILImage.Image:
    return PILImage.open(io.BytesIO(png_bytes(seed, size=size, mode=mode))).convert(mode)


def make_zip(members: dict[str, bytes], *, compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def upload(name: str, data: bytes, content_type: str = "application/octet-stream"):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type=content_type)


def media_files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def png(seed: int) -> bytes:
    """A 32x32 RGB PNG of random pixels: a different file for each seed."""
    return encode(sample(seed), "PNG")


def post_files(client, project, **files: bytes) -> dict[str, int]:
    """Upload ``name=bytes`` through the API; every file must be stored. Name -> image id."""
    response = client.post(
        f"/api/projects/{project.id}/images/",
        {"files": [upload(name, data) for name, data in files.items()]},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    return {r["name"]: r["image"] for r in response.json()["results"]}
