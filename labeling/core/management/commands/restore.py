"""Restore a backup made by ``manage.py backup`` into an empty database.

    python manage.py restore --from /backups/labelloop-2026-11-27
    python manage.py restore --from /backups/labelloop-2026-11-27 --force   # replace data

Refuses a database that already has tables unless ``--force``. Checks the dump's checksum
first and, afterwards, the row counts against the backup's manifest and that every file a
row names is in the image store.
"""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from labeling.core.backup import backup_restore
from labeling.core.errors import ServiceError


class Command(BaseCommand):
    help = "Load a backup folder (database and files) into this deployment."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--from", dest="source", required=True, type=Path, help="a backup folder"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="replace the contents of a database that is not empty",
        )

    def handle(self, *args, **options) -> None:
        try:
            summary = backup_restore(
                source=options["source"], force=options["force"], progress=self._say
            )
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(self.style.SUCCESS(f"restored {summary.folder}"))

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
