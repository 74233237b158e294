"""Where ingested files come from: uploaded files, zip archives (streamed) and folders.

Each yields ``Source`` objects whose bytes are read lazily and never past the byte limit, or
``SourceError`` for an entry that is rejected before it is read (unsafe path, zip bomb).
"""

from __future__ import annotations

import os
import posixpath
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

ARCHIVE_SUFFIXES = (".zip",)


@dataclass(frozen=True)
class Source:
    name: str  # path inside the upload, archive or folder; shown back to the user
    read: Callable[[], bytes]  # returns at most limit + 1 bytes, so oversize is detectable
    folder: str | None = None  # name of the parent folder, for the ImageFolder layout


@dataclass(frozen=True)
class SourceError:
    name: str
    reason: str


@dataclass(frozen=True)
class Limits:
    max_bytes: int
    max_pixels: int
    max_archive_bytes: int
    max_archive_members: int
    max_compression_ratio: int


def _skip(name: str) -> bool:
    """Archive and OS clutter that is not content: macOS resource forks, dotfiles."""
    parts = name.split("/")
    return parts[0] == "__MACOSX" or any(part.startswith(".") for part in parts if part)


def _unsafe(name: str) -> bool:
    if name.startswith(("/", "\\")) or "\\" in name or (len(name) > 1 and name[1] == ":"):
        return True
    return ".." in name.split("/")


def _parent(name: str) -> str | None:
    parent = posixpath.basename(posixpath.dirname(name))
    return parent or None


def zip_sources(
    fileobj: BinaryIO, *, archive_name: str, limits: Limits
) -> Iterator[Source | SourceError]:
    """Stream the members of a zip archive without reading the archive into memory."""
    try:
        archive = zipfile.ZipFile(fileobj)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        yield SourceError(archive_name, f"not a readable zip archive ({exc})")
        return
    with archive:
        members = [info for info in archive.infolist() if not info.is_dir()]
        if len(members) > limits.max_archive_members:
            yield SourceError(
                archive_name,
                f"archive has {len(members):,} files, over the limit of "
                f"{limits.max_archive_members:,}",
            )
            return
        declared = sum(info.file_size for info in members)
        if declared > limits.max_archive_bytes:
            yield SourceError(
                archive_name,
                f"archive expands to {declared:,} bytes, over the limit of "
                f"{limits.max_archive_bytes:,} (possible zip bomb)",
            )
            return
        budget = [limits.max_archive_bytes]  # bytes actually inflated, whatever headers claim
        for info in members:
            name = f"{archive_name}/{info.filename}"
            if _unsafe(info.filename):
                yield SourceError(name, "unsafe path in archive (absolute or '..')")
                continue
            if _skip(info.filename):
                continue
            if info.flag_bits & 0x1:
                yield SourceError(name, "encrypted archive members are not supported")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                # Its "content" is a link target, not an image; as in folder imports,
                # links are never followed.
                yield SourceError(name, "symbolic links are not followed")
                continue
            if info.file_size > limits.max_bytes:
                yield SourceError(name, f"file is over the {limits.max_bytes:,} byte limit")
                continue
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 1024 * 1024 and ratio > limits.max_compression_ratio:
                yield SourceError(name, f"compression ratio {ratio:,.0f}:1 looks like a zip bomb")
                continue
            if info.filename.lower().endswith(ARCHIVE_SUFFIXES):
                yield SourceError(name, "nested archives are not supported")
                continue
            yield Source(
                name=name,
                read=_zip_reader(archive, info, limits.max_bytes, budget),
                folder=_parent(info.filename),
            )


def _zip_reader(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, max_bytes: int, budget: list[int]
) -> Callable[[], bytes]:
    def read() -> bytes:
        with archive.open(info) as member:
            data = member.read(min(max_bytes, budget[0]) + 1)
        budget[0] -= len(data)
        return data

    return read


def file_source(
    fileobj: BinaryIO, *, name: str, max_bytes: int, folder: str | None = None
) -> Source:
    def read() -> bytes:
        fileobj.seek(0)
        return fileobj.read(max_bytes + 1)

    return Source(name=name, read=read, folder=folder)


def folder_sources(root: Path, *, limits: Limits) -> Iterator[Source | SourceError]:
    """Every file below ``root`` in a stable order; zip archives in it are expanded."""
    root = root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for filename in sorted(filenames):
            if filename.startswith("."):
                continue
            path = Path(dirpath) / filename
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                yield SourceError(rel, "symbolic links are not followed")
                continue
            if filename.lower().endswith(ARCHIVE_SUFFIXES):
                with path.open("rb") as handle:
                    yield from zip_sources(handle, archive_name=rel, limits=limits)
                continue
            yield Source(name=rel, read=_path_reader(path, limits.max_bytes), folder=_parent(rel))


def _path_reader(path: Path, max_bytes: int) -> Callable[[], bytes]:
    def read() -> bytes:
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)

    return read
