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
# Login and token throttling is tested explicitly (tests/labeling/core/test_throttles.py);
# elsewhere tests log in, and send a wrong password or token, as often as they like.
os.environ.setdefault("LABELLOOP_THROTTLE_AUTH", "1000/min")
os.environ.setdefault("LABELLOOP_THROTTLE_AUTH_USERNAME", "1000/min")
os.environ.setdefault("LABELLOOP_THROTTLE_BAD_TOKEN", "1000/min")
# The worker trains small label sets for 1,000 steps (TrainConfig.min_steps), which on this
# suite's ~30 worker trainings would add about ten minutes. Tests of the worker assert what
# it does with a model, not how good 1,000 steps make it (bench/ and docs/benchmarks.md
# measure that); test_api checks the default and that the setting reaches the training.
os.environ.setdefault("LABELLOOP_TRAIN_MIN_STEPS", "300")
# No automatic pretraining of backbones in the suite: an hour-long background run per project
# that reaches 1,000 images. tests/labeling/learning/test_backbones.py turns it on.
os.environ.setdefault("LABELLOOP_PRETRAIN_MIN_IMAGES", "0")
# No fine-tune after each round on a backbone (a ResNet trained on Ray, scored on pixels):
# tests of head rounds count what goes through the ResNet. tests/labeling/learning/
# test_fine_tune.py turns it on and checks the product's default.
os.environ.setdefault("LABELLOOP_FINE_TUNE_STEPS", "0")
