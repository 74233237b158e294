"""A full disk under the image store during an import: every file of the batch is rejected
with the reason, no row is stored, no file (whole or truncated) is left behind, and the same
import succeeds, intact, once there is room.

    .venv/bin/python -m pytest tests/labeling/images/test_disk_full.py -q

The disk is real: `manage.py import_images` runs in a private mount namespace (`unshare
--mount`; as a non-root user inside a user namespace too) over a 64 KiB tmpfs, so the writes
fail with the kernel's own ENOSPC. Where namespaces are not allowed the test skips, saying
so; tests/labeling/images/test_ingest.py covers an unwritable store everywhere.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from labeling.images.models import Image
from tests.factories import png_bytes

pytestmark = pytest.mark.django_db(transaction=True)
ROOT = Path(__file__).resolve().parents[3]
FILES = 30  # 64x64 noise PNGs of ~4.2 KB (two 4 KiB tmpfs pages each): ~250 KB in all


# Root (a container, CI) takes a plain mount namespace and keeps its file access to the
# embedded PostgreSQL's socket; anyone else maps themselves to root in a user namespace, where
# the files they own (their own embedded PostgreSQL's socket included) stay theirs.
UNSHARE = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "-U", "-r", "--mount"]


def namespaces_work() -> bool:
    try:
        probe = [*UNSHARE, "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"]
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def in_a_small_tmpfs(store: Path, script: str, env: dict[str, str]) -> str:
    """Run ``script`` (sh) with a 64 KiB tmpfs mounted at ``store``, visible only to it."""
    mount = f"mount -t tmpfs -o size=64k tmpfs {shlex.quote(str(store))}"
    done = subprocess.run(
        [*UNSHARE, "sh", "-ec", f"{mount}\n{script}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_a_full_disk_rejects_the_batch_leaves_no_orphans_and_the_retry_is_intact(project, tmp_path):
    if not namespaces_work():
        pytest.skip("no mount namespace allowed here (unshare): cannot mount a small tmpfs")
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    for i in range(FILES):
        (incoming / f"{i:02d}.png").write_bytes(png_bytes(i, size=64))
    store = tmp_path / "store"
    store.mkdir()
    params = connection.get_connection_params()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{params['user']}@{quote(params['host'], safe='')}/"
        f"{params['dbname']}",
        "LABELLOOP_MEDIA_ROOT": str(store),
        "LABELLOOP_DATA_DIR": str(tmp_path),
    }
    manage = f"{shlex.quote(sys.executable)} manage.py"
    run_import = (
        f"{manage} import_images {shlex.quote(str(incoming))} --project {project.slug} "
        "--quiet-progress"
    )
    files = f"find {shlex.quote(str(store))} -type f -exec sha256sum {{}} +"
    output = in_a_small_tmpfs(
        store,
        f"{run_import}\necho '=== files'\n{files}\n"
        # Room again (an operator grew the volume), then the very same import.
        f"mount -o remount,size=4m {shlex.quote(str(store))}\necho '=== retry'\n"
        f"{run_import}\necho '=== files'\n{files}\n",
        env,
    )
    first, left_behind, retry, retry_files = output.split("=== ")
    assert f"0 created, 0 duplicate, {FILES} rejected" in first
    reasons = [line for line in first.splitlines() if line.startswith("  rejected ")]
    assert len(reasons) == FILES
    assert all("could not write to the image store" in line for line in reasons)
    assert all("No space left on device" in line for line in reasons), reasons[:3]
    assert left_behind.split("\n", 1)[1].strip() == ""  # no file, whole or truncated

    assert f"{FILES} created, 0 duplicate, 0 rejected" in retry
    stored = {}
    for line in retry_files.split("\n", 1)[1].strip().splitlines():
        digest, path = line.split(maxsplit=1)
        stored[os.path.relpath(path, store)] = digest
    rows = dict(Image.objects.filter(project=project).values_list("storage_key", "sha256"))
    assert len(rows) == FILES
    assert stored == rows  # every row's file is there, and its bytes are the row's
