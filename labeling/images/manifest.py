"""Label manifests that come with an upload: CSV or JSON mapping a file name to a label.

Accepted shapes:
- CSV with a ``filename,label`` header (other columns ignored), or two columns and no header;
- JSON ``{"a.png": "cat", ...}`` or ``[{"filename": "a.png", "label": "cat"}, ...]``.

A ``gold`` column (CSV, with a header that has ``filename`` and ``label`` or ``gold``) or key
(JSON list items) gives a gold label: the image is imported as a gold question with that known
answer (``Image.gold_label``), labeled with it. A row gives a label, a gold label, or both when
they agree.

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
_LABEL_KEYS = {"label", "gold"}


class Manifest(dict[str, str]):
    """File name -> label, and which of those labels are gold labels (``gold``: names)."""

    def __init__(self, mapping: dict[str, str], gold: set[str] | None = None) -> None:
        super().__init__(mapping)
        self.gold = gold or set()


def manifest_parse(*, data: bytes, name: str) -> Manifest:
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


def _parse_json(text: str, name: str) -> Manifest:
    try:
        # Past the depth limit, a 400; plain json.loads raised RecursionError there (a 500).
        payload = json_loads_limited(text, what=f"label manifest {name!r}", strict=False)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"label manifest {name!r} is not valid JSON: {exc}") from None
    if isinstance(payload, dict):
        rows = [(filename, label, None) for filename, label in payload.items()]
    elif isinstance(payload, list):
        rows = []
        for i, row in enumerate(payload):
            if not isinstance(row, dict) or "filename" not in row or not _LABEL_KEYS & set(row):
                raise ValidationFailed(
                    f"label manifest {name!r}: item {i} needs 'filename' and 'label' (or 'gold')"
                )
            rows.append((row["filename"], row.get("label"), row.get("gold")))
    else:
        raise ValidationFailed(f"label manifest {name!r} must be a JSON object or list")
    return _check(rows, name)


def _parse_csv(text: str, name: str) -> Manifest:
    try:
        table = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValidationFailed(f"label manifest {name!r} is not valid CSV: {exc}") from None
    table = [row for row in table if any(cell.strip() for cell in row)]
    if not table:
        raise ValidationFailed(f"label manifest {name!r} is empty")
    header = [cell.strip().lower() for cell in table[0]]
    gi = None
    if "filename" in header and ("label" in header or "gold" in header):
        fi = header.index("filename")
        li = header.index("label") if "label" in header else None
        gi = header.index("gold") if "gold" in header else None
        body = table[1:]
    else:
        fi, li = 0, 1
        body = table
    rows = []
    for number, row in enumerate(body, start=2 if body is not table else 1):
        if len(row) <= fi or (_cell(row, li) is None and _cell(row, gi) is None):
            raise ValidationFailed(
                f"label manifest {name!r}: line {number} needs a filename and a label"
            )
        rows.append((row[fi].strip(), _cell(row, li), _cell(row, gi)))
    return _check(rows, name)


def _cell(row: list[str], index: int | None) -> str | None:
    """A CSV cell's text, or None when the column is absent, the row short or the cell blank."""
    if index is None or index >= len(row):
        return None
    return row[index].strip() or None


def _text(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _check(rows: list[tuple[object, object, object]], name: str) -> Manifest:
    mapping: dict[str, str] = {}
    gold: set[str] = set()
    for filename, label, gold_label in rows:
        if not isinstance(filename, str) or not filename:
            raise ValidationFailed(f"label manifest {name!r}: empty or non-text filename")
        label, gold_label = _text(label), _text(gold_label)
        if gold_label is not None and (not isinstance(gold_label, str) or not gold_label):
            raise ValidationFailed(f"label manifest {name!r}: {filename!r} has a blank gold label")
        if gold_label is not None and label is not None and label != gold_label:
            raise ValidationFailed(
                f"label manifest {name!r}: {filename!r} has label {label!r} and gold label "
                f"{gold_label!r}; a gold question's label is its gold label"
            )
        label = gold_label if gold_label is not None else label
        if not isinstance(label, str) or not label:
            raise ValidationFailed(f"label manifest {name!r}: {filename!r} has no label")
        if filename in mapping and (
            mapping[filename] != label or (filename in gold) != (gold_label is not None)
        ):
            raise ValidationFailed(
                f"label manifest {name!r}: {filename!r} is given two labels "
                f"({mapping[filename]!r} and {label!r})"
            )
        mapping[filename] = label
        if gold_label is not None:
            gold.add(filename)
    return Manifest(mapping, gold)


def manifest_lookup(manifest: dict[str, str], source_name: str) -> str | None:
    """Find the label for a file, by its full path, its path inside the archive, or its name."""
    key = _key_for(manifest, source_name)
    return None if key is None else manifest[key]


def manifest_is_gold(manifest: dict[str, str], source_name: str) -> bool:
    """Whether the manifest's label for the file is a gold label."""
    key = _key_for(manifest, source_name)
    return key is not None and key in getattr(manifest, "gold", ())


def _key_for(manifest: dict[str, str], source_name: str) -> str | None:
    if source_name in manifest:
        return source_name
    parts = source_name.split("/")
    for start in range(1, len(parts)):
        candidate = "/".join(parts[start:])
        if candidate in manifest:
            return candidate
    base = posixpath.basename(source_name)
    return base if base in manifest else None
