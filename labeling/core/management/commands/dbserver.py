"""Inspect or stop the embedded PostgreSQL server.

python manage.py dbserver status    # running?, pid, socket, client processes
python manage.py dbserver start     # start it and leave it running
python manage.py dbserver stop      # stop it now (fast shutdown)
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from labeling.core import embedded_pg


class Command(BaseCommand):
    help = "Inspect, start or stop the embedded PostgreSQL server."

    def add_arguments(self, parser) -> None:
        parser.add_argument("action", choices=["status", "start", "stop"])

    def handle(self, *args, **options) -> None:
        db = settings.DATABASES["default"]
        if "EMBEDDED_PGDATA" not in db:
            raise CommandError("DATABASE_URL is set: this deployment has no embedded server")
        pgdata = Path(db["EMBEDDED_PGDATA"])
        action = options["action"]
        if action == "start":
            server = embedded_pg.ensure_server(pgdata, detach=True)
            self.stdout.write(f"running; socket in {server.socket_dir}")
        elif action == "stop":
            stopped = embedded_pg.stop(pgdata)
            self.stdout.write("stopped" if stopped else "was not running")
        else:
            self.stdout.write(json.dumps(embedded_pg.status(pgdata), indent=2))
