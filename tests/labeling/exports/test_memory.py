"""Memory stays flat for a 100,000-image project: ``manage.py export`` runs in a subprocess
for a 1,000-image and a 100,000-image project, and the peak RSS of the big export must stay
within a small margin of the small one's (a whole-table read would need ~100x the rows).

    LABELLOOP_DATA_DIR=var/test-export python -m pytest tests/labeling/exports/test_memory.py

The rows are made in PostgreSQL (generate_series): 70% labeled with one annotation each, every
image scored by a model version. They share three real PNG files in the image store, so the
imagefolder export reads real bytes (70,000 entries: past 65,535, so ZIP64 end records too).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from labeling.core.storage import storage_key, storage_put
from labeling.learning.models import ModelVersion, TrainingRun
from tests.factories import ProjectFactory, png_bytes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
LABELED_SHARE = 7  # of every 10 images


def fill(project, bob, count: int) -> None:
    """``count`` image rows, annotations for the labeled ones, and a score for each."""
    keys, sizes = [], []
    for seed in range(3):
        data = png_bytes(seed)
        key = storage_key(sha256=hashlib.sha256(data).hexdigest(), image_format="PNG")
        storage_put(key=key, data=data)
        keys.append(key)
        sizes.append(len(data))
    run = TrainingRun.objects.create(project=project, trigger="manual", status="succeeded")
    model = ModelVersion.objects.create(
        project=project, run=run, number=1, checkpoint_key="k", architecture="a", labels_used=1
    )
    params = {
        "project": project.id,
        "n": count,
        "keys": keys,
        "sizes": sizes,
        "labels": list(project.labels),
        "share": LABELED_SHARE,
        "bob": bob.id,
        "model": model.id,
    }
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO images_image (project_id, sha256, storage_key, width, height, mode,
                format, original_name, size_bytes, status, priority, annotation_count,
                consensus_label, agreement, predicted_label, confidence, uncertainty,
                random_key, in_random_slice, lease_exploration, created_at, updated_at)
            SELECT %(project)s, encode(sha256(convert_to(%(project)s || '-' || g, 'UTF8')), 'hex'),
                (%(keys)s::text[])[1 + g %% 3], 28, 28, 'L', 'PNG', 'scan-' || g || '.png',
                (%(sizes)s::int[])[1 + g %% 3],
                CASE WHEN g %% 10 < %(share)s THEN 'labeled' ELSE 'unlabeled' END, 0,
                CASE WHEN g %% 10 < %(share)s THEN 1 ELSE 0 END,
                CASE WHEN g %% 10 < %(share)s THEN (%(labels)s::text[])[1 + g %% 10] END,
                CASE WHEN g %% 10 < %(share)s THEN 1.0 END,
                (%(labels)s::text[])[1 + g %% 10], 0.75, 0.25, random(), false, false,
                now(), now()
            FROM generate_series(1, %(n)s) g
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO annotations_annotation (image_id, annotator_id, label, client_id,
                duration_ms, source, created_at)
            SELECT id, %(bob)s, consensus_label, gen_random_uuid(), 1200, 'manual', now()
            FROM images_image WHERE project_id = %(project)s AND consensus_label IS NOT NULL
            """,
            params,
        )
        cursor.execute(
            """
            INSERT INTO learning_imagescore (image_id, model_version_id, predicted, confidence,
                probabilities, score)
            SELECT id, %(model)s, 0, 0.75, ARRAY[0.75, 0.25]::float8[], 0.25
            FROM images_image WHERE project_id = %(project)s
            """,
            params,
        )


# A small launcher runs the export and reports its peak RSS. Measuring straight from this
# (pytest) process would not work: Linux carries the parent's high-water mark over fork and
# exec into the child's ru_maxrss, so every child would report pytest's ~120 MiB.
LAUNCHER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.call(sys.argv[1:])\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(code)\n"
)


def export_peak_rss(project, fmt: str, out: Path) -> int:
    """Run ``manage.py export`` in a child process; its peak resident memory in bytes."""
    media = Path(settings.STORAGES["default"]["OPTIONS"]["location"])
    db = connection.get_connection_params()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['user']}@{quote(db['host'], safe='')}/{db['dbname']}",
        "LABELLOOP_MEDIA_ROOT": str(media),
        "LABELLOOP_DATA_DIR": str(media.parent),
    }
    args = ["manage.py", "export", "--project", project.slug, "--format", fmt, "--out", str(out)]
    log = out.with_name(out.name + ".err")
    with open(log, "w") as err:
        done = subprocess.run(
            [sys.executable, "-c", LAUNCHER, sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    assert done.returncode == 0, log.read_text()[-3000:]
    return int(done.stdout.split()[-1]) * 1024  # kilobytes on Linux


def test_export_memory_stays_flat_from_1000_to_100000_images(bob, tmp_path):
    small = ProjectFactory(slug="small", labels=[str(i) for i in range(10)])
    big = ProjectFactory(slug="big", labels=[str(i) for i in range(10)])
    fill(small, bob, 1_000)
    fill(big, bob, 100_000)
    peaks = {}
    for fmt in ("json", "imagefolder"):
        for project in (small, big):
            out = tmp_path / f"{project.slug}.{fmt}"
            peaks[fmt, project.slug] = export_peak_rss(project, fmt, out)
        print(
            f"{fmt}: peak RSS {peaks[fmt, 'small'] / 2**20:.1f} MiB for 1,000 images, "
            f"{peaks[fmt, 'big'] / 2**20:.1f} MiB for 100,000"
        )
        # Flat: the 100x bigger export may use a little more (allocator noise, psycopg's
        # buffers reaching their working size), never a share of its size. Reading all rows
        # at once (one 100,000-row chunk) peaked at 364 MiB for the json export.
        assert peaks[fmt, "big"] <= 1.2 * peaks[fmt, "small"] + 8 * 2**20, peaks

    # And the big exports are whole.
    lines = (tmp_path / "big.json").read_bytes().splitlines()
    assert sum(line.startswith(b'{"id": ') for line in lines) == 100_000
    assert lines[-1] == b'], "image_count": 100000}'
    with zipfile.ZipFile(tmp_path / "big.imagefolder") as archive:
        names = archive.namelist()
        assert len(names) == 70_000
        assert len(set(names)) == len(names)
        stored = {png_bytes(seed) for seed in range(3)}
        assert all(archive.read(name) in stored for name in names[:3] + names[-3:])
        # Every entry's CRC; Info-ZIP's own check of such an archive is in test_zipstream.py.
        assert archive.testzip() is None
    err = (tmp_path / "big.json.err").read_text()
    assert "big: 10,000 images exported" in err and "big: 100,000 images exported" in err
