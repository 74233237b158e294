"""Decide whether a blob is an image LabelLoop will store, and say why not when it isn't.

Every check runs before the file touches the image store or the database.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image as PILImage
from PIL import UnidentifiedImageError

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
