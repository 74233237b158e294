"""The cells and names an export writes: times and numbers as JSON carries them, CSV
cells a spreadsheet will not run as formulas, and file names safe in a zip on every system."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def _csv_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text: a string that starts like a formula
    (``=``, ``@``, ``+`` or ``-`` not followed by a plain number, a tab or a carriage return)
    gets a leading ``'``, so an uploaded ``=HYPERLINK(...).png`` cannot run in Excel (OWASP's
    CSV injection advice). Class names such as ``-1`` stay as they are; json is unchanged."""
    if value is None:
        return ""
    if isinstance(value, str) and value and value[0] in "=@+-\t\r":
        if value[0] in "+-" and _NUMBER.fullmatch(value):
            return value
        return "'" + value
    return value


_UNSAFE = re.compile(r"[\x00-\x1f\x7f/\\:*?\"<>|]+")


def _safe_name(text: str, *, limit: int = 100) -> str:
    """A path component that is the same on every OS: no separators, no control or
    reserved characters, no leading dots (hidden files, ``..``)."""
    cleaned = _UNSAFE.sub("_", text).strip().lstrip(".").strip()
    return cleaned[:limit] or "_"


def _time(value: datetime | None) -> str | None:
    # The API's format (DRF): ISO 8601 in UTC with a Z.
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(value: float | None) -> float | None:
    # JSON has no NaN or infinity; a model that produced one has no usable value here.
    return value if value is not None and math.isfinite(value) else None
