"""Export a model version as one file: ``python manage.py export_model PROJECT [--number N]
--format onnx|torchscript [--quantize int8] [--output PATH]``.

The same file ``GET /api/model-versions/{id}/export/`` serves, made in this process
(``export_server.export_build``) when it is not made yet, and kept for both. PROJECT is the
project's id or slug; the version defaults to the active one; the output defaults to the
file's own name in the current folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from labeling.core.errors import ServiceError
from labeling.core.storage import storage_open
from labeling.learning import model_exports
from labeling.learning.export_server import export_build
from labeling.learning.models import ModelExport, ModelVersion
from labeling.projects.models import Project


class Command(BaseCommand):
    help = "Export a model version as an ONNX or TorchScript file (float32 or int8)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("project", help="the project's id or slug")
        parser.add_argument(
            "--number", type=int, help="the model version's number (default: the active one)"
        )
        parser.add_argument("--format", required=True, choices=list(model_exports.FORMATS))
        parser.add_argument("--quantize", choices=list(model_exports.QUANTIZATIONS))
        parser.add_argument("--output", "-o", help="where to write it (default: its own name)")

    def handle(self, *args, **opts) -> None:
        version = _version(opts["project"], opts["number"])
        params = {"format": opts["format"], "quantize": opts["quantize"] or ""}
        try:
            fmt, quantize = model_exports.model_export_options_parse(params=params)
            export = model_exports.model_export_request(version=version, fmt=fmt, quantize=quantize)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        with transaction.atomic():
            # Waits while a worker is making this file, then finds it ready.
            export = (
                ModelExport.objects.select_for_update()
                .select_related("model_version__project")
                .get(pk=export.pk)
            )
            if export.status == ModelExport.Status.PENDING:
                export_build(export)
        if export.status == ModelExport.Status.FAILED:
            ModelExport.objects.filter(pk=export.pk).delete()  # the next try starts afresh
            raise CommandError(f"the export failed: {export.error}")
        target = Path(opts["output"] or model_exports.model_export_filename(export=export))
        target.parent.mkdir(parents=True, exist_ok=True)
        with storage_open(key=export.file_key) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
        self.stdout.write(
            f"wrote {target} ({export.size_bytes:,} bytes, sha256 {export.sha256}): "
            f"v{version.number} of {version.project.slug}, {fmt}"
            + (f" {quantize}" if quantize else "")
        )


def _version(project_ref: str, number: int | None) -> ModelVersion:
    lookup = {"pk": int(project_ref)} if project_ref.isdigit() else {"slug": project_ref}
    project = Project.objects.filter(**lookup).first()
    if project is None:
        raise CommandError(f"no project {project_ref!r}")
    versions = ModelVersion.objects.select_related("project").filter(project=project)
    version = (
        versions.filter(number=number).first()
        if number is not None
        else versions.filter(is_active=True).first()
    )
    if version is None:
        which = f"version {number}" if number is not None else "active version"
        raise CommandError(f"project {project.slug!r} has no {which}")
    return version
