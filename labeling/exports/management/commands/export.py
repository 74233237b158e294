"""Export a project to a file or stdout, streamed (flat memory at any project size).

    python manage.py export --project SLUG [--format json|csv|imagefolder] [--out FILE]
        [--labeled | --no-labeled] [--predictions | --no-predictions] [--progress-every N]

Without ``--out`` (or with ``--out -``) the export goes to stdout. Progress and the summary
go to stderr: a line every ``--progress-every`` images (10,000 by default; 0 turns it off).
A file is written under a temporary name and renamed when complete, so a failed export
never leaves a partial file that looks whole. Defaults are the API's (see
``labeling/exports/services.py``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO

from django.core.management.base import BaseCommand, CommandError

from labeling.core.errors import ServiceError
from labeling.exports.services import FORMATS, export_options_parse, export_stream
from labeling.projects.models import Project


class Command(BaseCommand):
    help = "Export a project's images, labels and predictions as json, csv or an imagefolder zip."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True, help="project slug or id")
        parser.add_argument("--format", choices=FORMATS, default="json")
        parser.add_argument("--out", default="-", help="file to write; '-' for stdout (default)")
        parser.add_argument(
            "--labeled",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="only images with a consensus label (default: all; imagefolder: always)",
        )
        parser.add_argument(
            "--predictions",
            action=argparse.BooleanOptionalAction,
            default=None,
            help="include the active model's predictions (default: yes; imagefolder: never)",
        )
        parser.add_argument(
            "--progress-every",
            type=int,
            default=10_000,
            help="print a progress line to stderr every N images; 0 for none",
        )

    def handle(self, *args, **options) -> None:
        project = _project(options["project"])
        params = {"format": options["format"]}
        for flag in ("labeled", "predictions"):
            if options[flag] is not None:
                params[flag] = options[flag]
        try:
            export = export_options_parse(params=params)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        every = options["progress_every"]
        if every < 0:
            raise CommandError("--progress-every must be 0 or more")
        reported = 0

        def progress(count: int) -> None:
            nonlocal reported
            if every and count // every > reported // every:
                self.stderr.write(f"{project.slug}: {count:,} images exported")
            reported = count

        stream = export_stream(project=project, options=export, progress=progress)
        if options["out"] == "-":
            written = _write(stream, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            where = "stdout"
        else:
            written = _write_file(stream, Path(options["out"]))
            where = options["out"]
        self.stderr.write(
            f"exported {reported:,} images of {project.slug} as {export.format} to {where} "
            f"({written / 1e6:,.1f} MB)"
        )


def _project(key: str) -> Project:
    project = Project.objects.filter(slug=key).first()
    if project is None and key.isdigit():
        project = Project.objects.filter(pk=int(key)).first()
    if project is None:
        raise CommandError(f"no project with slug or id {key!r}")
    return project


def _write(stream, out: BinaryIO) -> int:
    written = 0
    for block in stream:
        out.write(block)
        written += len(block)
    return written


def _write_file(stream, path: Path) -> int:
    path = path.resolve()
    if not path.parent.is_dir():
        raise CommandError(f"cannot write {path}: {path.parent} is not a folder")
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - renamed or removed below
        dir=path.parent, prefix=f".{path.name}.", suffix=".part", delete=False
    )
    try:
        with handle:
            written = _write(stream, handle)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    return written
