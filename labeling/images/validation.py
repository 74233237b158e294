"""Decide whether a blob is an image LabelLoop will store, and say why not when it isn't;
and turn it upright (``image_upright``) before it is stored.

Every check runs before the file touches the image store or the database.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import ExifTags, ImageOps, JpegImagePlugin, UnidentifiedImageError
from PIL import Image as PILImage

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")


class Rejected(Exception):
    """A file that will not be stored; ``reason`` is shown to the person who sent it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ValidImage:
    format: str
    width: int
    height: int
    mode: str


def image_pixels(data: bytes) -> int:
    """Width x height from the image's header, without decoding it; 0 when it has no
    readable header (``validate_image`` then says why it is refused)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            with PILImage.open(io.BytesIO(data)) as image:
                width, height = image.size
        # (SyntaxError: Pillow's word for some malformed headers.)
        except (PILImage.DecompressionBombError, OSError, ValueError, SyntaxError):
            return 0
    return max(width, 0) * max(height, 0)


def validate_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ValidImage:
    if not data:
        raise Rejected("empty file")
    if len(data) > max_bytes:
        raise Rejected(f"file is over the {max_bytes:,} byte limit")
    with warnings.catch_warnings():
        # Our own pixel limit below is the policy; Pillow's warning would only be noise.
        warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
        try:
            image = PILImage.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise Rejected(
                "not a recognised image (expected PNG, JPEG, WebP, BMP, GIF or TIFF)"
            ) from None
        except PILImage.DecompressionBombError:
            raise Rejected(f"image is over the {max_pixels:,} pixel limit") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise Rejected(f"image data is truncated or corrupt ({exc})") from None
        with image:
            if image.format not in ALLOWED_FORMATS:
                raise Rejected(f"{image.format} images are not supported")
            width, height = image.size
            if width <= 0 or height <= 0:
                raise Rejected(f"image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise Rejected(
                    f"image is {width}x{height} = {width * height:,} pixels, over the "
                    f"{max_pixels:,} pixel limit (possible decompression bomb)"
                )
            try:
                # Decode the pixels (the first frame of a GIF or TIFF): catches truncated and
                # corrupt files that have a valid header.
                image.load()
            except PILImage.DecompressionBombError:
                raise Rejected(f"image is over the {max_pixels:,} pixel limit") from None
            except Exception as exc:  # Pillow's decoders raise many types on bad data
                raise Rejected(f"image data is truncated or corrupt ({exc})") from None
            return ValidImage(format=image.format, width=width, height=height, mode=image.mode)


def image_upright(data: bytes, info: ValidImage) -> tuple[bytes, ValidImage]:
    """The bytes to store for a valid image, and what they are: ``data`` itself, unless its
    EXIF orientation (2-8) says the picture is to be turned for viewing. Then the upright
    picture, in the same format, with the rest of its EXIF and its colour profile, and its
    own width and height.

    This is the one place orientation is applied: what is stored is what people see, so the
    API's size, the file the UI shows, exports and training agree without each reader
    having to apply the tag (many, such as PIL's ``open`` or torchvision, do not).
    """
    with PILImage.open(io.BytesIO(data)) as image:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
        if orientation not in range(2, 9):
            return data, info
        options = _same_encoding(image)
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            out = io.BytesIO()
            upright.save(out, format=info.format, exif=upright.getexif(), **options)
        except (OSError, ValueError) as exc:
            raise Rejected(f"image could not be turned upright ({exc})") from None
    width, height = upright.size
    return out.getvalue(), ValidImage(info.format, width, height, upright.mode)


def _same_encoding(image: PILImage.Image) -> dict[str, object]:
    """Save options that keep the original's encoding: a JPEG's quantisation tables and
    chroma subsampling (about the same quality and size, no extra loss to speak of), a
    lossless re-encoding elsewhere, and the colour profile."""
    options: dict[str, object] = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if image.format == "JPEG":
        options["qtables"] = image.quantization
        sampling = JpegImagePlugin.get_sampling(image)
        if sampling >= 0:
            options["subsampling"] = sampling
    elif image.format == "WEBP":
        options["lossless"] = True  # whether the original was lossy is not known here
    elif image.format == "TIFF" and image.info.get("compression") not in (None, "raw"):
        options["compression"] = image.info["compression"]
    return options
