"""The streaming ZIP writer: standard readers read what it writes, ZIP64 past 65,535 entries,
and its memory does not grow with the number of entries."""

from __future__ import annotations

import io
import shutil
import subprocess
import tracemalloc
import zipfile
from datetime import UTC, datetime

import pytest

from labeling.exports.zipstream import ZipStream

WHEN = datetime(2024, 5, 17, 13, 45, 31, tzinfo=UTC)


def write(entries) -> bytes:
    archive = ZipStream()
    out = bytearray()
    for name, chunks in entries:
        for piece in archive.add(name, chunks, modified=WHEN):
            out += piece
    for piece in archive.finish():
        out += piece
    return bytes(out)


def unzip_test(data: bytes, tmp_path) -> None:
    """Info-ZIP's own check as well, where the machine has it."""
    if shutil.which("unzip") is None:
        return
    path = tmp_path / "a.zip"
    path.write_bytes(data)
    done = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_zipfile_reads_back_every_entry_byte_for_byte(tmp_path):
    big = bytes(range(256)) * 1000  # 256 KB in several chunks
    entries = [
        ("cat/1-a.png", [b"\x89PNG first"]),
        ("dog/2-b.png", [big[:100_000], b"", big[100_000:]]),
        ("empty/3-e.png", []),
        ("über/4-ñ.png", [b"unicode names"]),
    ]
    data = write(entries)
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert archive.testzip() is None
    assert archive.namelist() == [name for name, _ in entries]
    for name, chunks in entries:
        assert archive.read(name) == b"".join(chunks)
        info = archive.getinfo(name)
        assert info.compress_type == zipfile.ZIP_STORED
        assert info.date_time == (2024, 5, 17, 13, 45, 30)  # DOS time: 2-second steps
        assert info.external_attr >> 16 == 0o100644
    unzip_test(data, tmp_path)


def test_more_than_65535_entries_get_zip64_end_records(tmp_path):
    count = 70_000
    data = write((f"c/{i}.png", [i.to_bytes(3, "little")]) for i in range(count))
    assert b"PK\x06\x06" in data[-200:]  # the ZIP64 end of central directory record
    archive = zipfile.ZipFile(io.BytesIO(data))
    names = archive.namelist()
    assert len(names) == count
    assert archive.read(names[-1]) == (count - 1).to_bytes(3, "little")
    assert archive.testzip() is None
    unzip_test(data, tmp_path)


def test_the_writer_memory_does_not_grow_with_the_number_of_entries():
    archive = ZipStream()
    tracemalloc.start()
    try:
        for i in range(50_000):
            for _ in archive.add(
                f"class/{i:07d}-some-original-name.png", [b"x" * 100], modified=WHEN
            ):
                pass  # drained as it comes, like the HTTP response
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for _ in archive.finish():
        pass
    # zipfile.ZipFile keeps ~390 bytes an entry (19 MB here); this writer spills its central
    # directory to disk past 1 MiB.
    assert peak < 2 * 1024 * 1024, peak


def test_nothing_can_be_added_after_finish():
    archive = ZipStream()
    list(archive.finish())
    with pytest.raises(ValueError, match="already finished"):
        list(archive.add("a.png", [b"x"], modified=WHEN))
