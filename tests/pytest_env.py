"""Loaded by pytest before Django (``-p tests.pytest_env`` in pyproject.toml).

The suite runs with production settings (DEBUG off) and a throwaway secret key; the embedded
PostgreSQL keeps its data apart from the demo's, under var/test.
"""

from __future__ import annotations

import os
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("LABELLOOP_SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("LABELLOOP_DEBUG", "false")
os.environ.setdefault("LABELLOOP_SECURE_COOKIES", "false")
os.environ.setdefault("LABELLOOP_DATA_DIR", str(_ROOT / "var" / "test"))
# Token endpoint throttling is tested explicitly; elsewhere tests log in as often as they like.
os.environ.setdefault("LABELLOOP_THROTTLE_AUTH", "1000/min")
