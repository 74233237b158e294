"""A ZIP writer that streams: entries go out as they are written, and its memory stays flat
however many entries the archive holds.

    zip = ZipStream()
    for name, chunks, when in files:
        yield from zip.add(name, chunks, modified=when)
    yield from zip.finish()

Why not ``zipfile``: it keeps one ``ZipInfo`` object per entry (about 390 bytes) until it
writes the central directory, so a 1,000,000-image export would hold ~400 MB. Here each
entry's central-directory record (~100 bytes) goes to a spooled temporary file that moves to
disk past 1 MiB.

Entries are STORED (PNG and JPEG are already compressed) with a data descriptor after the
bytes (general purpose bit 3), so nothing is read twice and the output is never seeked. ZIP64
records are written when the archive needs them: more than 65,534 entries or offsets past
4 GiB. Every standard reader (Info-ZIP, libarchive, Python's zipfile, Windows) reads these.
"""

from __future__ import annotations

import struct
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from datetime import datetime

_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # 30 bytes
_DATA_DESCRIPTOR = struct.Struct("<IIII")  # signature, crc32, compressed, uncompressed
_CENTRAL_HEADER = struct.Struct("<IHHHHHHIIIHHHHHII")  # 46 bytes
_ZIP64_EXTRA_OFFSET = struct.Struct("<HHQ")  # header id 1, size 8, local header offset
_ZIP64_END = struct.Struct("<IQHHIIQQQQ")  # 56 bytes
_ZIP64_LOCATOR = struct.Struct("<IIQI")
_END = struct.Struct("<IHHHHIIH")  # 22 bytes

_U16 = 0xFFFF
_U32 = 0xFFFFFFFF
_FLAGS = 0x0808  # bit 3: sizes and CRC in a data descriptor; bit 11: names are UTF-8
_VERSION = 45  # 4.5: ZIP64
_MADE_BY = (3 << 8) | _VERSION  # 3 = Unix, so external attributes carry file modes
_FILE_MODE = 0o100644 << 16  # a regular file, rw-r--r--
_SPOOL_BYTES = 1 << 20  # central-directory records kept in memory before spilling to disk
_READ_BYTES = 1 << 16


def _dos_time(when: datetime) -> tuple[int, int]:
    """(time, date) in MS-DOS format: 2-second resolution, years 1980..2107."""
    year = min(max(when.year, 1980), 2107)
    date = ((year - 1980) << 9) | (when.month << 5) | when.day
    time = (when.hour << 11) | (when.minute << 5) | (when.second // 2)
    return time, date


class ZipStream:
    """Writes one archive; ``add()`` and ``finish()`` yield its bytes in order."""

    def __init__(self) -> None:
        self._offset = 0  # bytes yielded so far
        self._count = 0
        self._directory = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
        self._finished = False

    def add(self, name: str, chunks: Iterable[bytes], *, modified: datetime) -> Iterator[bytes]:
        """Yield one entry: its local header, ``chunks`` as they come, its data descriptor."""
        if self._finished:
            raise ValueError("the archive is already finished")
        encoded = name.encode("utf-8")
        if len(encoded) > _U16:
            raise ValueError(f"entry name too long: {name[:80]}...")
        time, date = _dos_time(modified)
        start = self._offset
        header = _LOCAL_HEADER.pack(
            0x04034B50, _VERSION, _FLAGS, 0, time, date, 0, 0, 0, len(encoded), 0
        )
        yield self._emit(header + encoded)
        crc, size = 0, 0
        for chunk in chunks:
            if not chunk:
                continue
            crc = zlib.crc32(chunk, crc)
            size += len(chunk)
            yield self._emit(chunk)
        if size >= _U32:
            # A 4 GiB image is not something an image store holds; refuse rather than write
            # a ZIP64 data descriptor that some readers mishandle.
            raise ValueError(f"entry {name!r} is 4 GiB or more")
        yield self._emit(_DATA_DESCRIPTOR.pack(0x08074B50, crc, size, size))
        self._record(encoded, crc=crc, size=size, time=time, date=date, offset=start)
        self._count += 1

    def finish(self) -> Iterator[bytes]:
        """Yield the central directory and the end records."""
        if self._finished:
            raise ValueError("the archive is already finished")
        self._finished = True
        start = self._offset
        self._directory.seek(0)
        while block := self._directory.read(_READ_BYTES):
            yield self._emit(block)
        self._directory.close()
        size = self._offset - start
        if self._count >= _U16 or start >= _U32 or size >= _U32:
            zip64_at = self._offset
            yield self._emit(
                _ZIP64_END.pack(
                    0x06064B50,
                    _ZIP64_END.size - 12,  # the record's size after this field
                    _MADE_BY,
                    _VERSION,
                    0,
                    0,
                    self._count,
                    self._count,
                    size,
                    start,
                )
            )
            yield self._emit(_ZIP64_LOCATOR.pack(0x07064B50, 0, zip64_at, 1))
        count16 = min(self._count, _U16)
        yield self._emit(
            _END.pack(0x06054B50, 0, 0, count16, count16, min(size, _U32), min(start, _U32), 0)
        )

    @property
    def entries(self) -> int:
        return self._count

    def _emit(self, data: bytes) -> bytes:
        self._offset += len(data)
        return data

    def _record(self, encoded: bytes, *, crc: int, size: int, time: int, date: int, offset: int):
        # Only the local header's offset can pass 4 GiB (sizes are capped above); then it
        # moves into a ZIP64 extra field and the fixed field says 0xFFFFFFFF.
        extra = _ZIP64_EXTRA_OFFSET.pack(1, 8, offset) if offset >= _U32 else b""
        self._directory.write(
            _CENTRAL_HEADER.pack(
                0x02014B50,
                _MADE_BY,
                _VERSION,
                _FLAGS,
                0,  # STORED
                time,
                date,
                crc,
                size,
                size,
                len(encoded),
                len(extra),
                0,  # comment length
                0,  # disk number
                0,  # internal attributes
                _FILE_MODE,
                min(offset, _U32),
            )
            + encoded
            + extra
        )
