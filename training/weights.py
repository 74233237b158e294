"""Fetching weight files: a local path or an http(s) URL, once, capped, checksummed.

    .venv/bin/python -m pytest tests/training/test_weights.py -q -p no:django

`fetch_weights` copies or streams the file (never all in memory) into `dest_dir` under the
SHA-256 of its content, so a file fetched once is found again by its checksum, and a URL
fetched once without a checksum is found again through a small `<sha256 of URL>.source` note.
Every failure is a `WeightsError` whose message says what to do about it.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import ssl
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import certifi
import torch

CHUNK = 1 << 20  # bytes read at a time: memory stays flat whatever the file's size
CAP_SETTING = "LABELLOOP_WEIGHTS_MAX_BYTES"


class WeightsError(ValueError):
    """A weights file that cannot be fetched or read; the message says why and what to do."""


def _size(n: int) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 100_000 else f"{n:,} bytes"


def _too_big(source: str, n: int, cap: int, *, at_least: bool = False) -> WeightsError:
    more = "more than " if at_least else ""
    return WeightsError(
        f"{source}: {more}{_size(n)} is over the {_size(cap)} cap ({CAP_SETTING}); "
        "raise the cap or bring a smaller file"
    )


def read_state_dict(path: str | Path) -> dict:
    """torch.load(path, weights_only=True) as a dict (a state_dict or a wrapper around one).

    weights_only: a weights file from the internet must not be able to run code."""
    target = Path(path)
    if not target.is_file():
        raise WeightsError(f"no weights file at {target}: check the path (on the worker)")
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise WeightsError(
            f"{target} is not a torch weights file that loads safely ({exc}); "
            "save one with torch.save(model.state_dict(), path)"
        ) from exc
    if not isinstance(state, dict):
        raise WeightsError(
            f"{target} holds a {type(state).__name__}, not a dict of tensors; "
            "save one with torch.save(model.state_dict(), path)"
        )
    return state


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _copy_capped(src: BinaryIO, dst: BinaryIO, *, source: str, max_bytes: int) -> str:
    """Copy in chunks, stopping as soon as more than `max_bytes` came; -> SHA-256 hex."""
    digest, total = hashlib.sha256(), 0
    while chunk := src.read(CHUNK):
        total += len(chunk)
        if total > max_bytes:
            raise _too_big(source, total, max_bytes, at_least=True)
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


def _open_url(url: str, *, timeout: float, context: ssl.SSLContext | None) -> BinaryIO:
    request = urllib.request.Request(url, headers={"User-Agent": "labelloop-weights"})
    if context is None and url.lower().startswith("https"):
        context = ssl.create_default_context(cafile=certifi.where())
    try:
        return urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as exc:
        raise WeightsError(
            f"{url} answered HTTP {exc.code} {exc.reason}: check the URL (and that the file "
            "is public)"
        ) from exc
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ssl.SSLError):
            raise WeightsError(
                f"could not verify {url}: {exc.reason}. Copy the file to the worker and name "
                "its path instead, or fix the server's certificate."
            ) from exc
        raise _unreachable(url, exc.reason) from exc
    except (TimeoutError, ConnectionError) as exc:
        raise _unreachable(url, exc) from exc


def _unreachable(url: str, reason: object) -> WeightsError:
    return WeightsError(
        f"could not reach {url}: {reason}. Offline? Copy the file to the worker and name "
        "its path instead."
    )


def _download(url: str, tmp: BinaryIO, *, max_bytes: int, timeout: float, context) -> str:
    with _open_url(url, timeout=timeout, context=context) as response:
        length = response.headers.get("Content-Length")
        if length and length.isdigit() and int(length) > max_bytes:
            raise _too_big(url, int(length), max_bytes)
        try:
            return _copy_capped(response, tmp, source=url, max_bytes=max_bytes)
        except (TimeoutError, ConnectionError) as exc:
            raise _unreachable(url, f"the download broke off ({exc})") from exc


def _cached(path: Path, sha256: str) -> bool:
    return path.is_file() and _hash_file(path) == sha256


def _source_note(dest: Path, url: str) -> Path:
    return dest / f"{hashlib.sha256(url.encode()).hexdigest()}.source"


def _check_source(source: str) -> str | None:
    """The URL scheme (http/https), None for a file path; anything else is refused."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", source)
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme not in ("http", "https"):
        raise WeightsError(
            f"{scheme}:// is not supported ({source}): name a file path on the worker, "
            "an http:// or an https:// URL"
        )
    if not urlsplit(source).hostname:
        raise WeightsError(f"{source} names no host: write it as https://host/path/file.pth")
    return scheme


def fetch_weights(
    source: str,
    dest_dir: str | Path,
    *,
    max_bytes: int,
    sha256: str | None = None,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> Path:
    """Copy or download `source` to `dest_dir/<sha256 of content>.pth`; -> that path.

    A file already there with the expected `sha256` (or, without one, a URL fetched before)
    is not fetched again. The content must load with `torch.load(weights_only=True)`.
    `timeout` is seconds per connect or read; `ssl_context` defaults to certifi's CAs."""
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise WeightsError(f"sha256 {sha256!r} is not 64 hex digits (sha256sum prints it)")
    if max_bytes < 1:
        raise WeightsError(f"max_bytes must be positive, got {max_bytes} ({CAP_SETTING})")
    scheme = _check_source(source)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if sha256 is not None and _cached(dest / f"{sha256}.pth", sha256):
        return dest / f"{sha256}.pth"
    note = _source_note(dest, source) if scheme else None
    if sha256 is None and note is not None and note.is_file():
        known = note.read_text().strip()
        if _cached(dest / f"{known}.pth", known):
            return dest / f"{known}.pth"
    with tempfile.NamedTemporaryFile(dir=dest, prefix=".fetch-", delete=False) as tmp:
        tmp_path = Path(tmp.name)
    try:
        got = _fetch_into(source, scheme, tmp_path, max_bytes, timeout, ssl_context)
        if sha256 is not None and got != sha256:
            raise WeightsError(
                f"{source}: SHA-256 mismatch: expected {sha256}, got {got}. The file is not "
                "the one named: check the source or the checksum."
            )
        read_state_dict(tmp_path)
        final = dest / f"{got}.pth"
        os.replace(tmp_path, final)
    finally:
        tmp_path.unlink(missing_ok=True)
    if note is not None:
        note.write_text(got)
    return final


def _fetch_into(
    source: str,
    scheme: str | None,
    tmp_path: Path,
    max_bytes: int,
    timeout: float,
    context: ssl.SSLContext | None,
) -> str:
    """Fill `tmp_path` from the source; -> SHA-256 hex of what was written."""
    with tmp_path.open("wb") as out:
        if scheme:
            return _download(source, out, max_bytes=max_bytes, timeout=timeout, context=context)
        path = Path(source).expanduser()
        if not path.is_file():
            raise WeightsError(f"no weights file at {path}: check the path (on the worker)")
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_big(str(path), size, max_bytes)
        with path.open("rb") as src:
            return _copy_capped(src, out, source=str(path), max_bytes=max_bytes)
