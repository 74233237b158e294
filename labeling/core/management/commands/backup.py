"""Back up the database and the image store into a new folder.

    python manage.py backup --out /backups/labelloop-2026-11-27

Restore with ``python manage.py restore --from FOLDER``; see labeling/core/backup.py and
docs/reliability.md ("Backups").
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.core.backup import backup_create
from labeling.core.errors import ServiceError


class Command(BaseCommand):
    help = "pg_dump the database and copy the image store's files into --out (new or empty)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--out", required=True, type=Path, help="folder to create")

    def handle(self, *args, **options) -> None:
        try:
            summary = backup_create(out=options["out"], progress=self._say)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(
            self.style.SUCCESS(
                f"backed up {summary.counts.get('images', 0):,} images, "
                f"{summary.files:,} files ({summary.file_bytes / 2**20:,.1f} MiB) "
                f"to {summary.folder}"
            )
        )

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
