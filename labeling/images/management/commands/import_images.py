"""Import images from a folder, a zip or single files into a project.

    python manage.py import_images PATH [PATH ...] --project SLUG [--labels labels.csv]
        [--imagefolder] [--user USERNAME]

Prints a progress bar, then a summary and every rejected file with its reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from labeling.core.errors import ServiceError
from labeling.images.manifest import manifest_parse
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import Source, SourceError, folder_sources, zip_sources
from labeling.projects.models import Membership, Project, Role


class Command(BaseCommand):
    help = "Import images (files, folders, zip archives) into a project."

    def add_arguments(self, parser) -> None:
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--labels", type=Path, help="CSV or JSON manifest: filename -> label")
        parser.add_argument(
            "--imagefolder", action="store_true", help="label each image by its parent folder"
        )
        parser.add_argument("--user", help="who imported labels are attributed to")
        parser.add_argument("--quiet-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project with slug {options['project']!r}")
        user = self._user(project, options["user"])
        for path in options["paths"]:
            if not path.exists():
                raise CommandError(f"{path} does not exist")
        manifest = None
        if options["labels"]:
            try:
                data = options["labels"].read_bytes()
                manifest = manifest_parse(data=data, name=options["labels"].name)
            except OSError as exc:
                raise CommandError(f"cannot read {options['labels']}: {exc}") from None
            except ServiceError as exc:
                raise CommandError(exc.message) from None
        bar = tqdm(
            unit="img", desc=f"importing into {project.slug}", disable=options["quiet_progress"]
        )

        def progress(result) -> None:
            bar.update(1)
            bar.set_postfix_str(result.status, refresh=False)

        try:
            report = images_ingest(
                project=project,
                user=user,
                sources=self._sources(options["paths"]),
                manifest=manifest,
                labels_from_folders=options["imagefolder"],
                progress=progress,
            )
        finally:
            bar.close()
        summary = report.summary
        self.stdout.write(
            f"{summary['created']} created, {summary['duplicate']} duplicate, "
            f"{summary['rejected']} rejected"
        )
        for result in report.results:
            if result.status == "rejected":
                self.stdout.write(f"  rejected {result.name}: {result.reason}")

    def _user(self, project: Project, username: str | None):
        users = get_user_model().objects
        if username:
            user = users.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user named {username!r}")
            return user
        membership = (
            Membership.objects.filter(project=project, role=Role.ADMIN)
            .select_related("user")
            .order_by("id")
            .first()
        )
        if membership is None:
            raise CommandError("the project has no admin; name one with --user")
        return membership.user

    def _sources(self, paths: list[Path]) -> Iterator[Source | SourceError]:
        limits = ingest_limits()
        for path in paths:
            if path.is_dir():
                yield from folder_sources(path, limits=limits)
            elif path.suffix.lower() == ".zip":
                with path.open("rb") as handle:
                    yield from zip_sources(handle, archive_name=path.name, limits=limits)
            else:
                yield from folder_sources_single(path, limits.max_bytes)


def folder_sources_single(path: Path, max_bytes: int) -> Iterator[Source]:
    def read() -> bytes:
        with path.open("rb") as handle:
            return handle.read(max_bytes + 1)

    yield Source(name=path.name, read=read, folder=path.parent.name or None)
