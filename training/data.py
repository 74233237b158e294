"""Image bytes -> model-ready uint8 arrays, decoded once and cached by SHA-256.

    .venv/bin/python -m pytest tests/training/test_data.py -p no:django -q

Geometry: images are *letterboxed* to `input_size` x `input_size`: scaled so the long side
fits, centred, and padded with the median colour of their own border. Letterboxing keeps
shapes undistorted (a squashed "1" or a stretched face is a different image to a CNN, and the
distortion would depend on each file's aspect ratio), and the border-median pad blends into
the background (black for MNIST-style digits, white for scans) instead of drawing a frame.

Cache format: append-only shards under `<cache_dir>/v1-<mode><size>/`, each a pair
`shard-<uuid>.npy` (N x C x H x W uint8) and `shard-<uuid>.keys.npy` (N SHA-256 hex strings).
Why shards and not one file per image or one big file:
  * reads are memory-mapped row gathers, so a scoring batch costs a few page faults, not
    hundreds of `open()` calls (per-image files made warm scoring I/O bound in bench/score.py);
  * writers never modify a file: each writes a new shard under a fresh name and publishes it
    by renaming the keys file last, so concurrent Ray workers and worker processes need no lock
    and a reader never sees half a shard;
  * content addressing makes duplicates harmless (the first shard that holds a digest wins).
The cache is per (mode, size), so changing a project's input spec starts a new one.

Compaction: a project that keeps receiving images adds a small shard per round that follows
an upload, and every reader opens every shard. Once `COMPACT_AT` shards hold fewer than
`SMALL_SHARD_ROWS` rows each, the writer that made the last one merges them (up to
`COMPACT_MAX_BYTES`) into one: it writes and fsyncs the merged shard, publishes it like any
other, then deletes the small ones. Readers need no lock: a memory map outlives its file, and a
shard that disappears between a reader's listing and its opening is skipped (its rows are in
the merged shard, which was published first). A lock file keeps two writers from merging the
same shards at once; if it is held, merging waits for the next write.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from training.contracts import ImageRef

CACHE_VERSION = 1
SMALL_SHARD_ROWS = 2048  # a shard with fewer rows than a full decode chunk is "small"
COMPACT_AT = 16  # merge the small shards once there are this many
COMPACT_MAX_BYTES = 256 << 20  # at most this much is rewritten by one merge

# What a missing, truncated, non-image, or absurdly large file raises from open() and Pillow.
# Pillow signals some broken headers with SyntaxError and oversized ones with
# DecompressionBombError (which is not an OSError), so they are listed explicitly.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    Image.DecompressionBombError,
)


def open_image_bytes(path: str) -> bytes:
    """The one place that reads image bytes; an S3 backend would branch here on the scheme."""
    with open(path, "rb") as f:
        return f.read()


def image_mode(channels: int) -> str:
    if channels not in (1, 3):
        raise ValueError(f"input_channels must be 1 (L) or 3 (RGB), got {channels}")
    return "L" if channels == 1 else "RGB"


def letterbox(img: Image.Image, size: int) -> Image.Image:
    """Scale the long side to `size`, centre, pad with the median border colour."""
    w, h = img.size
    if w == 0 or h == 0:
        raise ValueError("image has zero width or height")
    if (w, h) == (size, size):
        return img
    scale = size / max(w, h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    # reducing_gap lets Pillow shrink big photos by integer factors first: same result within
    # rounding, several times faster for 12-megapixel inputs.
    resized = img.resize((new_w, new_h), Image.Resampling.BILINEAR, reducing_gap=3.0)
    if (new_w, new_h) == (size, size):
        return resized
    arr = np.asarray(resized)
    pixel = arr.shape[2:]  # () for L, (3,) for RGB
    edges = (arr[0], arr[-1], arr[:, 0], arr[:, -1])
    border = np.concatenate([edge.reshape(-1, *pixel) for edge in edges])
    pad = np.median(border, axis=0).astype(np.uint8)
    fill = int(pad) if arr.ndim == 2 else tuple(int(v) for v in pad)
    canvas = Image.new(resized.mode, (size, size), fill)
    canvas.paste(resized, ((size - new_w) // 2, (size - new_h) // 2))
    return canvas


def decode_image(data: bytes, *, size: int, channels: int) -> np.ndarray:
    """Bytes of any Pillow format -> (channels, size, size) uint8. Raises DECODE_ERRORS."""
    mode = image_mode(channels)
    with Image.open(io.BytesIO(data)) as img:
        # JPEG only: let libjpeg decode at 1/2, 1/4 or 1/8 scale when that is still >= size.
        img.draft(mode, (size, size))
        img.load()
        # Images LabelLoop stores are upright already (ingest applies the EXIF orientation
        # once: labeling/images/validation.py image_upright), so this turns only bytes that
        # never went through ingest (predict uploads) and images stored before it did, the
        # same way, so that a model sees what the annotators saw.
        img = ImageOps.exif_transpose(img)
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            # Transparent pixels become white, the background a viewer would show them on.
            rgba = img.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(white, rgba)
        img = letterbox(img.convert(mode), size)
        arr = np.asarray(img, dtype=np.uint8)
    return arr[None].copy() if channels == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def decode_items(
    items: Sequence[ImageRef], *, size: int, channels: int
) -> tuple[list[str], np.ndarray, list[str]]:
    """Decode each distinct digest once: (digests, arrays, keys of items that failed)."""
    shas: list[str] = []
    arrays: list[np.ndarray] = []
    failed: list[str] = []
    seen: set[str] = set()
    for item in items:
        if item.sha256 in seen:
            continue
        try:
            arrays.append(decode_image(open_image_bytes(item.path), size=size, channels=channels))
        except DECODE_ERRORS:
            failed.append(item.key)
            continue
        seen.add(item.sha256)
        shas.append(item.sha256)
    stacked = np.stack(arrays) if arrays else np.zeros((0, channels, size, size), dtype=np.uint8)
    return shas, stacked, failed


class ArrayCache:
    """Content-addressed uint8 arrays for one (channels, size); see the module docstring."""

    def __init__(self, cache_dir: str | os.PathLike[str], *, size: int, channels: int) -> None:
        self.size = size
        self.channels = channels
        self.root = Path(cache_dir) / f"v{CACHE_VERSION}-{image_mode(channels)}{size}"
        self.root.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[int, int]] = {}  # digest -> (shard number, row)
        self._shards: list[np.ndarray] = []  # memory maps, in load order
        self._names: list[str] = []  # the shard each map came from
        self._loaded: set[str] = set()
        self.refresh()

    def refresh(self) -> None:
        """Pick up shards written since the last look (by this or any other process)."""
        for keys_path in sorted(self.root.glob("shard-*.keys.npy")):
            name = keys_path.name.removesuffix(".keys.npy")
            if name in self._loaded:
                continue
            try:
                keys = np.load(keys_path)
                shard = np.load(self.root / f"{name}.npy", mmap_mode="r")
            except FileNotFoundError:  # merged away since the listing: its rows are elsewhere
                continue
            number = len(self._shards)
            self._shards.append(shard)
            self._names.append(name)
            self._loaded.add(name)
            for row, sha in enumerate(keys.tolist()):
                self._index.setdefault(sha.decode("ascii"), (number, row))

    def __contains__(self, sha: str) -> bool:
        return sha in self._index

    def __len__(self) -> int:
        return len(self._index)

    @property
    def num_shards(self) -> int:
        return len(self._shards)

    def missing(self, items: Sequence[ImageRef]) -> list[ImageRef]:
        seen: set[str] = set()
        out = []
        for item in items:
            if item.sha256 not in self._index and item.sha256 not in seen:
                seen.add(item.sha256)
                out.append(item)
        return out

    def add(self, shas: Sequence[str], arrays: np.ndarray) -> None:
        """Publish one new shard. The keys file is renamed into place last: that is the commit."""
        if len(shas) == 0:
            return
        expected = (len(shas), self.channels, self.size, self.size)
        if arrays.shape != expected or arrays.dtype != np.uint8:
            raise ValueError(f"arrays must be uint8 {expected}, got {arrays.dtype} {arrays.shape}")
        self._publish(arrays, np.array(shas, dtype="S64"))
        self.refresh()
        if len(shas) < SMALL_SHARD_ROWS:
            self.compact()

    def _publish(self, arrays: np.ndarray, keys: np.ndarray, *, durable: bool = False) -> str:
        """Write one shard: the arrays, then the keys file, whose rename is the commit.
        `durable` fsyncs both first (a merge deletes the only other copy of the rows)."""
        name = f"shard-{uuid.uuid4().hex}"
        for suffix, value in ((".npy", arrays), (".keys.npy", keys)):
            tmp = self.root / f".{name}{suffix}.tmp"
            with open(tmp, "wb") as f:
                np.save(f, value)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, self.root / f"{name}{suffix}")
        if durable:
            directory = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        return name

    def compact(self, *, at: int = COMPACT_AT, max_bytes: int = COMPACT_MAX_BYTES) -> int:
        """Merge the small shards into one when there are `at` or more; returns how many were
        merged (0 when there was nothing to do or another writer holds the merge lock)."""
        small = [i for i, shard in enumerate(self._shards) if len(shard) < SMALL_SHARD_ROWS]
        if len(small) < at:
            return 0
        with open(self.root / ".compact.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0
            picked, size = [], 0
            for i in sorted(small, key=lambda i: len(self._shards[i])):
                name, shard = self._names[i], self._shards[i]
                if not (self.root / f"{name}.keys.npy").exists():
                    continue  # merged by another writer since this cache loaded it
                if picked and size + shard.nbytes > max_bytes:
                    break
                picked.append(i)
                size += shard.nbytes
            if len(picked) < 2:
                return 0
            keys = np.concatenate(
                [np.load(self.root / f"{self._names[i]}.keys.npy") for i in picked]
            )
            arrays = np.concatenate([self._shards[i] for i in picked])
            self._publish(arrays, keys, durable=True)
            for i in picked:
                for suffix in (".keys.npy", ".npy"):  # keys first: readers skip the rest
                    with contextlib.suppress(FileNotFoundError):
                        (self.root / f"{self._names[i]}{suffix}").unlink()
        # Start over from the files, so this cache lets go of the merged shards' maps.
        self._index, self._shards, self._names, self._loaded = {}, [], [], set()
        self.refresh()
        return len(picked)

    def get(self, shas: Sequence[str]) -> np.ndarray:
        """Rows for `shas` in order, (N, C, H, W) uint8. KeyError if one is not cached."""
        if any(sha not in self._index for sha in shas):
            self.refresh()
        where = np.array([self._index[sha] for sha in shas], dtype=np.int64).reshape(-1, 2)
        out = np.empty((len(shas), self.channels, self.size, self.size), dtype=np.uint8)
        for number in np.unique(where[:, 0]):
            rows = np.flatnonzero(where[:, 0] == number)
            out[rows] = self._shards[number][where[rows, 1]]
        return out

    def fill(self, items: Sequence[ImageRef]) -> list[str]:
        """Decode and store what is missing; returns keys of items that could not be decoded."""
        todo = self.missing(items)
        shas, arrays, failed = decode_items(todo, size=self.size, channels=self.channels)
        self.add(shas, arrays)
        failed_keys = set(failed)
        failed_shas = {item.sha256 for item in todo if item.key in failed_keys}
        # Every item sharing a failed digest failed too, not only the one that was tried.
        return [item.key for item in items if item.sha256 in failed_shas]


def load_items(
    items: Sequence[ImageRef], *, cache_dir: str, size: int, channels: int
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Arrays for `items` (decoding what the cache lacks): (x, kept item positions, failed keys)."""
    cache = ArrayCache(cache_dir, size=size, channels=channels)
    failed = set(cache.fill(items))
    kept = np.array([i for i, item in enumerate(items) if item.key not in failed], dtype=np.int64)
    x = cache.get([items[i].sha256 for i in kept])
    return x, kept, sorted(failed)
