"""Label manifests that come with an upload: CSV or JSON mapping a file name to a label.

Accepted shapes:
- CSV with a ``filename,label`` header (other columns ignored), or two columns and no header;
- JSON ``{"a.png": "cat", ...}`` or ``[{"filename": "a.png", "label": "cat"}, ...]``.

Rows match a file by its path inside the upload (``digits.zip/3/a.png`` or ``3/a.png``) or, failing
that, by its base name.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath

from labeling.core.errors import ValidationFailed
from labeling.core.parsers import json_loads_limited

MAX_MANIFEST_BYTES = 50 * 1024 * 1024


def manifest_parse(*, data: bytes, name: str) -> dict[str, str]:
    if len(data) > MAX_MANIFEST_BYTES:
        raise ValidationFailed(f"label manifest {name!r} is over {MAX_MANIFEST_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationFailed(f"label manifest {name!r} is not UTF-8 text") from None
    stripped = text.lstrip()
    if name.lower().endswith(".json") or stripped.startswith(("{", "[")):
        return _parse_json(text, name)
    return _parse_csv(text, name)


def _parse_json(text: str, name: str) -> dict[str, str]:
    try:
        # Past the depth limit, a 400; plain json.loads raised RecursionError there (a 500).
        payload = json_loads_limited(text, what=f"label manifest {name!r}", strict=False)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"label manifest {name!r} is not valid JSON: {exc}") from None
    if isinstance(payload, dict):
        rows = list(payload.items())
    elif isinstance(payload, list):
        rows = []
        for i, row in enumerate(payload):
            if not isinstance(row, dict) or "filename" not in row or "label" not in row:
                raise ValidationFailed(
                    f"label manifest {name!r}: item {i} needs 'filename' and 'label'"
                )
            rows.append((row["filename"], row["label"]))
    else:
        raise ValidationFailed(f"label manifest {name!r} must be a JSON object or list")
    return _check(rows, name)


def _parse_csv(text: str, name: str) -> dict[str, str]:
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValidationFailed(f"label manifest {name!r} is not valid CSV: {exc}") from None
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        raise ValidationFailed(f"label manifest {name!r} is empty")
    header = [cell.strip().lower() for cell in table[0]]
    if "filename" in header and "label" in header:
        fi, li = header.index("filename"), header.index("label")
        body = table[1:]
    else:
        fi, li = 0, 1
        body = table
    rows = []
    for number, row in enumerate(body, start=2 if body is not table else 1):
        if len(row) <= max(fi, li):
            raise ValidationFailed(
                f"label manifest {name!r}: line {number} needs a filename and a label"
            )
        rows.append((row[fi].strip(), row[li].strip()))
    return _check(rows, name)


def _check(rows: list[tuple[object, object]], name: str) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for filename, label in rows:
        if not isinstance(filename, str) or not filename:
            raise ValidationFailed(f"label manifest {name!r}: empty or non-text filename")
        if isinstance(label, int | float) and not isinstance(label, bool):
            label = str(label)
        if not isinstance(label, str) or not label:
            raise ValidationFailed(f"label manifest {name!r}: {filename!r} has no label")
        if mapping.get(filename, label) != label:
            raise ValidationFailed(
                f"label manifest {name!r}: {filename!r} is given two labels "
                f"({mapping[filename]!r} and {label!r})"
            )
        mapping[filename] = label
    return mapping


def manifest_lookup(manifest: dict[str, str], source_name: str) -> str | None:
    """Find the label for a file, by its full path, its path inside the archive, or its name."""
    if source_name in manifest:
        return manifest[source_name]
    parts = source_name.split("/")
    for start in range(1, len(parts)):
        candidate = "/".join(parts[start:])
        if candidate in manifest:
            return manifest[candidate]
    return manifest.get(posixpath.basename(source_name))
