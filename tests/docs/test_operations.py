"""docs/operations.md and .env.example against the code: every variable the code reads is
documented in both, and the array-cache sizing follows the cache's real on-disk format.

    .venv/bin/python -m pytest tests/docs/test_operations.py -q
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from training.data import ArrayCache

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "operations.md"
READS = re.compile(r"""(?:env_\w+\(\s*|os\.environ(?:\.get\(|\[)\s*)"([A-Z][A-Z0-9_]+)\"""")
# Read by the code but not configuration: set by Django, tests or the process launcher.
NOT_SETTINGS = {"DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "CI"}


def variables_read_by_the_code() -> set[str]:
    names = set()
    for folder in ("labeling", "training"):
        for path in (ROOT / folder).rglob("*.py"):
            names |= set(READS.findall(path.read_text()))
    # Test-only hooks (LABELLOOP_TEST_*) are not deployment settings.
    return {n for n in names if n not in NOT_SETTINGS and "_TEST_" not in n}


def test_the_scan_finds_the_settings_it_should():
    found = variables_read_by_the_code()
    assert {"DATABASE_URL", "RAY_ADDRESS", "LABELLOOP_SECRET_KEY", "LABELLOOP_STORAGE"} <= found
    assert len(found) >= 30


def test_every_variable_the_code_reads_is_in_the_operations_guide():
    guide = GUIDE.read_text()
    missing = sorted(n for n in variables_read_by_the_code() if f"`{n}`" not in guide)
    assert missing == [], f"document these in docs/operations.md (## Every setting): {missing}"


def test_every_variable_the_code_reads_is_in_the_env_example():
    example = (ROOT / ".env.example").read_text()
    missing = sorted(
        n for n in variables_read_by_the_code() if not re.search(rf"^#?\s*{n}=", example, re.M)
    )
    assert missing == [], f"add these to .env.example: {missing}"


def test_every_variable_in_the_env_example_is_explained_in_the_guide():
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.M))
    guide = GUIDE.read_text()
    assert sorted(n for n in listed if f"`{n}`" not in guide) == []


def cache_rows() -> list[tuple[int, int, int, int]]:
    """(channels, size, bytes per image, GiB at 1M) from the guide's array-cache table."""
    rows = re.findall(
        r"^\| (\d+) x (\d+) (gray|RGB) \| ([\d,]+) \| ([\d.]+) GiB \|", GUIDE.read_text(), re.M
    )
    return [
        (1 if kind == "gray" else 3, int(size), int(per.replace(",", "")), float(gib))
        for size, _, kind, per, gib in rows
    ]


def test_the_guide_s_cache_table_follows_the_cache_format():
    rows = cache_rows()
    assert len(rows) >= 3
    for channels, size, per_image, gib_per_million in rows:
        assert per_image == channels * size * size + 64  # uint8 pixels + an S64 SHA-256 key
        assert gib_per_million == pytest.approx(per_image * 1e6 / 1024**3, rel=0.05)


def test_a_real_cache_shard_takes_the_bytes_per_image_the_guide_says(tmp_path):
    """Write one full shard (2,048 images, as training/cluster.py's decode tasks do) and
    weigh the files."""
    channels, size, per_image, _ = cache_rows()[0]
    cache = ArrayCache(tmp_path, size=size, channels=channels)
    n = 2048
    rng = np.random.default_rng(0)
    shas = [f"{rng.integers(2**63):064x}" for _ in range(n)]
    cache.add(shas, rng.integers(0, 256, (n, channels, size, size), dtype=np.uint8))
    on_disk = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert len(cache) == n
    assert on_disk / n == pytest.approx(per_image, abs=1)  # npy headers: 256 B per shard
