"""Every log record is written once, in development (``make demo``) as in production.

Django's own ``django`` logger has a console handler of its own in DEBUG; with the root
handler LabelLoop configures, every rejected request ("Bad Request: ...") was printed twice.

Run: ``.venv/bin/python -m pytest tests/labeling/core/test_logging.py -q``
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.labeling.core.test_hardening import ROOT, production_env

EMIT = """
import logging, os
import django
os.environ["DJANGO_SETTINGS_MODULE"] = "labeling.settings"
django.setup()
logging.getLogger("django.request").warning("Bad Request: /api/projects/")
logging.getLogger("labeling.learning.worker").info("run 7 succeeded")
"""


@pytest.mark.parametrize("debug", [True, False], ids=["debug", "production"])
def test_each_log_record_is_printed_once(tmp_path, debug):
    env = production_env(tmp_path)
    if debug:
        env["LABELLOOP_DEBUG"] = "true"
    result = subprocess.run(
        [sys.executable, "-c", EMIT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines.count("Bad Request: /api/projects/") == 1, result.stderr
    assert lines.count("run 7 succeeded") == 1, result.stderr
