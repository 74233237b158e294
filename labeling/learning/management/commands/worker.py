"""Run the training worker: ``python manage.py worker [--once]`` (Ctrl-C or SIGTERM stops it
cleanly; a run in progress is left for another worker to resume)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from labeling.core.migration_state import require_migrated
from labeling.learning.worker import Worker


class Command(BaseCommand):
    help = "Claim and run queued training runs on Ray until stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="exit when the queue is empty")
        parser.add_argument("--poll", type=float, default=2.0, help="seconds between polls")

    def handle(self, *args, **options) -> None:
        from training.cluster import ensure_ray

        require_migrated()
        worker = Worker(poll_seconds=options["poll"])
        ensure_ray()
        worker.install_signal_handlers()  # after Ray, which installs a SIGTERM handler of its own
        worker.run_forever(once=options["once"])  # logs "worker <host:pid> ready" first
        self.stdout.write(f"worker {worker.name} stopped")
