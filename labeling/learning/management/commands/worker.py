"""Run the training worker: ``python manage.py worker [--once]`` (Ctrl-C or SIGTERM stops it
cleanly; a run in progress is left for another worker to resume)."""

from __future__ import annotations

import logging
import os
import threading

from django.core.management.base import BaseCommand, CommandError

from labeling.core.migration_state import require_migrated
from labeling.learning.models import RunLane
from labeling.learning.worker import Worker

logger = logging.getLogger("labeling.learning.worker")


def _stop_with_parent(worker: Worker, parent: int) -> None:
    """Stop ``worker`` once the process ``parent`` is gone (the demo that started it died
    without stopping it: SIGKILL, a crash). An orphan's parent becomes another process."""

    def watch() -> None:
        while not worker.stopping.wait(1.0):
            if os.getppid() != parent:
                logger.info("worker %s: its parent (pid %d) is gone; stopping", worker.name, parent)
                worker.stopping.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


class Command(BaseCommand):
    help = "Claim and run queued training runs on Ray until stopped."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="exit when the queue is empty")
        parser.add_argument("--poll", type=float, default=2.0, help="seconds between polls")
        parser.add_argument(
            "--parent",
            type=int,
            metavar="PID",
            help="stop when the process PID (which started this worker) is gone",
        )
        parser.add_argument(
            "--lanes",
            default=",".join(RunLane.values),
            help="which runs to serve, comma-separated: main (rounds, queue ordering), "
            "background (backbone pretraining and imports); default both, side by side",
        )

    def handle(self, *args, **options) -> None:
        require_migrated()
        lanes = [lane.strip() for lane in options["lanes"].split(",") if lane.strip()]
        unknown = sorted(set(lanes) - set(RunLane.values))
        if unknown or not lanes:
            raise CommandError(f"--lanes: unknown {unknown}; choose from {RunLane.values}")
        worker = Worker(poll_seconds=options["poll"], lanes=lanes)
        worker.connect_ray()
        worker.install_signal_handlers()  # after Ray, which installs a SIGTERM handler of its own
        if options["parent"] is not None:
            _stop_with_parent(worker, options["parent"])
        worker.run_forever(once=options["once"])  # logs "worker <host:pid> ready" first
        self.stdout.write(f"worker {worker.name} stopped")
