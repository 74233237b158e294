"""Delete image-store files no row references any more (left behind by deleted projects).

    python manage.py sweep_store --dry-run          # what would go, and how much space;
                                                    # and files rows name that are missing
    python manage.py sweep_store [--min-age-hours 24]

Safe while the app runs: see labeling/core/store_sweep.py.
"""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from labeling.core.store_sweep import store_sweep


class Command(BaseCommand):
    help = "Delete image-store files that no image or model version references."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="list what would be deleted; delete nothing"
        )
        parser.add_argument(
            "--min-age-hours",
            type=float,
            default=24.0,
            help="only delete files older than this (default 24; uploads in flight are younger)",
        )
        parser.add_argument("--list", action="store_true", help="print each file deleted")

    def handle(self, *args, **options) -> None:
        hours = options["min_age_hours"]
        if hours < 0:
            raise CommandError(f"--min-age-hours must be 0 or more, got {hours:g}")
        try:
            summary = store_sweep(
                min_age=timedelta(hours=hours), dry_run=options["dry_run"], progress=self._say
            )
        except OSError as exc:  # a bucket gone or out of reach; what was deleted stays so
            raise CommandError(f"the image store could not be read: {exc}") from exc
        if options["list"] or options["dry_run"]:
            for key in summary.deleted:
                self.stdout.write(key)
        verb = "would delete" if summary.dry_run else "deleted"
        self.stdout.write(
            self.style.SUCCESS(
                f"{summary.scanned:,} files scanned, {summary.referenced:,} in use; {verb} "
                f"{len(summary.deleted):,} unreferenced ({summary.deleted_bytes / 2**20:,.1f} "
                f"MiB); {summary.too_recent:,} unreferenced but younger than {hours:g} h kept"
                + (f"; {summary.kept_late:,} in use again" if summary.kept_late else "")
            )
        )
        if summary.missing:
            shown = ", ".join(summary.missing_sample)
            more = ", ..." if summary.missing > len(summary.missing_sample) else ""
            noun = "file" if summary.missing == 1 else "files"
            self.stdout.write(
                self.style.WARNING(
                    f"missing from the image store: {summary.missing:,} {noun} that rows name "
                    f"({shown}{more}); restore them from a backup (docs/reliability.md)"
                )
            )

    def _say(self, message: str) -> None:
        self.stdout.write(message)
        self.stdout.flush()
