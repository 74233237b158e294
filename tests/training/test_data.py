"""Decoding, letterboxing and the SHA-256 array cache, on real files."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.training.conftest import Store
from training import data
from training.contracts import ImageRef


def png_bytes(img: Image.Image, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def ref(path: Path, key: str | None = None) -> ImageRef:
    return ImageRef(key or path.stem, hashlib.sha256(path.read_bytes()).hexdigest(), str(path))


def test_importing_training_never_imports_django_nor_labeling() -> None:
    code = (
        "import sys, training, training.contracts, training.data, training.models, "
        "training.train, training.loop, training.progress, training.score, "
        "training.acquisition, training.cluster, training.simulate; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'labeling')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wide_image_is_letterboxed_not_stretched() -> None:
    img = Image.new("L", (40, 20), 0)
    img.paste(255, (0, 0, 40, 20))  # a white 2:1 bar on nothing
    arr = data.decode_image(png_bytes(img), size=20, channels=1)
    assert arr.shape == (1, 20, 20) and arr.dtype == np.uint8
    # Scaled to 20x10 and centred: rows 5..14 are the bar, the bands above and below are padding
    # in the border's median colour (the bar's own white, since the image is all bar).
    assert (arr[0, 5:15] == 255).all()


def test_letterbox_pads_with_the_border_colour() -> None:
    img = Image.new("L", (30, 10), 0)  # a black frame with a small white mark in the middle
    img.paste(255, (14, 4, 16, 6))
    arr = data.decode_image(png_bytes(img), size=30, channels=1)[0]
    assert arr[:10].max() == 0 and arr[20:].max() == 0  # padding is black, like the border
    assert arr[10:20].max() > 0


def test_images_are_converted_to_the_projects_channels() -> None:
    rgb = Image.new("RGB", (8, 8), (255, 0, 0))
    gray = data.decode_image(png_bytes(rgb), size=8, channels=1)
    assert gray.shape == (1, 8, 8) and gray[0, 0, 0] == 76  # ITU-R 601 luma of pure red
    back = data.decode_image(png_bytes(Image.new("L", (8, 8), 200)), size=8, channels=3)
    assert back.shape == (3, 8, 8) and (back == 200).all()


def test_transparent_pixels_become_white() -> None:
    img = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    arr = data.decode_image(png_bytes(img), size=4, channels=3)
    assert (arr == 255).all()


def test_jpeg_exif_rotation_is_applied(tmp_path: Path) -> None:
    img = Image.new("L", (20, 10), 0)
    img.paste(255, (0, 0, 10, 10))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif, quality=95)
    arr = data.decode_image(buf.getvalue(), size=20, channels=1)[0]
    # Displayed upright the image is 10 wide and 20 tall, white on top.
    assert arr[:10, 5:15].mean() > 200 and arr[10:, 5:15].mean() < 50


def test_each_image_is_decoded_once_and_later_reads_come_from_the_cache(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = list(store.items[:50])
    x, kept, failed = data.load_items(items, cache_dir=str(tmp_path), size=28, channels=1)
    assert failed == [] and len(kept) == 50
    calls = []
    monkeypatch.setattr(data, "decode_image", lambda *a, **k: calls.append(a))
    again, _, _ = data.load_items(items, cache_dir=str(tmp_path), size=28, channels=1)
    assert calls == []
    np.testing.assert_array_equal(x, again)
    cache = data.ArrayCache(tmp_path, size=28, channels=1)
    assert len(cache) == 50 and cache.num_shards == 1


def test_cached_arrays_are_the_decoded_pixels(store: Store, tmp_path: Path) -> None:
    items = list(store.items[:5])
    x, _, _ = data.load_items(items, cache_dir=str(tmp_path), size=28, channels=1)
    for row, item in zip(x, items, strict=True):
        np.testing.assert_array_equal(row[0], np.asarray(Image.open(item.path)))


def test_two_writers_publish_separate_shards_and_both_are_read(
    store: Store, tmp_path: Path
) -> None:
    a = data.ArrayCache(tmp_path, size=28, channels=1)
    b = data.ArrayCache(tmp_path, size=28, channels=1)
    a.fill(store.items[:10])
    b.fill(store.items[5:20])  # b has not seen a's shard yet: decodes 5..9 again, harmlessly
    fresh = data.ArrayCache(tmp_path, size=28, channels=1)
    assert len(fresh) == 20 and fresh.num_shards == 2
    shas = [it.sha256 for it in store.items[:20]]
    np.testing.assert_array_equal(fresh.get(shas), b.get(shas))


def test_small_shards_are_merged_and_every_row_still_reads_back(
    store: Store, tmp_path: Path
) -> None:
    """A project that keeps receiving images adds a small shard a round; readers stay fast."""
    items = list(store.items[:60])
    early = data.ArrayCache(tmp_path, size=28, channels=1)
    early.fill(items[:3])  # a reader that maps the first shards, then never looks again
    held = early.get([it.sha256 for it in items[:3]])
    writer = data.ArrayCache(tmp_path, size=28, channels=1)
    for start in range(3, 60, 3):  # 20 small writes in all
        writer.fill(items[start : start + 3])
    on_disk = sorted(p.name for p in writer.root.glob("shard-*.keys.npy"))
    assert len(on_disk) < data.COMPACT_AT  # 20 writes, merged once the 16th landed
    assert writer.num_shards == len(on_disk)  # the writer let go of the merged maps
    fresh = data.ArrayCache(tmp_path, size=28, channels=1)
    assert len(fresh) == 60
    x = fresh.get([it.sha256 for it in items])
    for row, item in zip(x, items, strict=True):
        np.testing.assert_array_equal(row[0], np.asarray(Image.open(item.path)))
    # The early reader's maps outlive the merged files, and it finds the rest by looking again.
    np.testing.assert_array_equal(early.get([it.sha256 for it in items[:3]]), held)
    np.testing.assert_array_equal(early.get([it.sha256 for it in items]), x)
    assert not list(writer.root.glob(".*.tmp"))


def test_a_merge_leaves_full_shards_alone_and_a_held_lock_defers_it(
    store: Store, tmp_path: Path
) -> None:
    import fcntl

    cache = data.ArrayCache(tmp_path, size=28, channels=1)
    big = np.zeros((data.SMALL_SHARD_ROWS, 1, 28, 28), dtype=np.uint8)
    cache.add([f"{i:064x}" for i in range(len(big))], big)
    with open(cache.root / ".compact.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another writer is merging
        for start in range(0, 3 * data.COMPACT_AT, 3):
            cache.fill(store.items[start : start + 3])
        assert cache.num_shards == 1 + data.COMPACT_AT
    assert cache.compact() == data.COMPACT_AT
    assert cache.num_shards == 2 and len(cache) == len(big) + 3 * data.COMPACT_AT
    assert cache.compact() == 0  # one small shard left: nothing to merge


def test_a_shard_gone_between_listing_and_opening_is_skipped(store: Store, tmp_path: Path) -> None:
    cache = data.ArrayCache(tmp_path, size=28, channels=1)
    cache.fill(store.items[:4])
    cache.fill(store.items[4:8])
    (first,) = [p for p in cache.root.glob("shard-*.npy") if not p.name.endswith("keys.npy")][:1]
    first.unlink()  # as a merge does, keys file still listed: the reader must not fail
    fresh = data.ArrayCache(tmp_path, size=28, channels=1)
    assert fresh.num_shards == 1 and len(fresh) == 4
    assert len(fresh.missing(store.items[:8])) == 4


def test_a_different_input_size_gets_its_own_cache(store: Store, tmp_path: Path) -> None:
    x32, _, _ = data.load_items(store.items[:3], cache_dir=str(tmp_path), size=32, channels=1)
    x28, _, _ = data.load_items(store.items[:3], cache_dir=str(tmp_path), size=28, channels=1)
    assert x32.shape == (3, 1, 32, 32) and x28.shape == (3, 1, 28, 28)


def test_corrupt_and_missing_files_are_reported_not_raised(store: Store, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(store.items[0].path).read_bytes()[:60])
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG but not really")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    missing = ImageRef("missing", "f" * 64, str(tmp_path / "nowhere.png"))
    items = [store.items[1], ref(truncated), ref(junk), ref(empty), missing, store.items[2]]
    x, kept, failed = data.load_items(items, cache_dir=str(tmp_path / "c"), size=28, channels=1)
    assert sorted(failed) == ["empty", "junk", "missing", "truncated"]
    np.testing.assert_array_equal(kept, [0, 5])
    assert x.shape == (2, 1, 28, 28)


def test_a_decompression_bomb_is_a_failure_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (300, 300)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 90,000 px is "2x too many" -> error
    _, _, failed = data.decode_items([ref(path)], size=28, channels=1)
    assert failed == ["big"]


def test_open_image_bytes_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    assert data.open_image_bytes(str(path)) == b"abc"
