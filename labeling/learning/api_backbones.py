"""Backbones over the API: ``/api/projects/{id}/backbones/`` lists a project's backbones
(GET, viewers) and imports pretrained weights (POST a ``.pth`` file, project admins). A
pretraining is started through ``/api/projects/{id}/training-runs/`` with
``{"kind": "pretrain"}`` (``labeling.learning.api``). The web process never opens the
weights (no torch here): the worker's import run checks them and fails with the reason.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.files.storage import default_storage
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from labeling.core.errors import PayloadTooLarge, ValidationFailed
from labeling.core.schema import ErrorSerializer
from labeling.learning.models import Backbone, RunTrigger
from labeling.learning.services import backbone_request
from labeling.projects.models import Role
from labeling.projects.selectors import project_get_for_user

# What a PyTorch file starts with: a zip archive (torch.save since 1.6) or a pickle (older).
TORCH_MAGIC = (b"PK\x03\x04", b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


class BackboneSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField()

    class Meta:
        model = Backbone
        fields = [
            "id",
            "number",
            "source",
            "origin",
            "run",
            "arch",
            "width",
            "stem",
            "input_size",
            "embed_dim",
            "images_seen",
            "metrics",
            "file_sha256",
            "created_at",
            "current",
        ]

    def get_current(self, backbone: Backbone) -> bool:
        return backbone.pk == self.context.get("current")


class BackboneImportSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="torchvision ResNet-18/50 weights, or a backbone file")
    input_size = serializers.IntegerField(
        min_value=16,
        max_value=512,
        required=False,
        help_text="side images are resized to for it (default LABELLOOP_BACKBONE_INPUT_SIZE)",
    )
    sha256 = serializers.RegexField(
        r"^[0-9a-fA-F]{64}$", required=False, help_text="checked before the weights are used"
    )


def _store_upload(project, upload) -> tuple[str, str]:
    """(store key, sha256) of the uploaded weights, checked for size and kind first."""
    cap = settings.LABELLOOP_WEIGHTS_MAX_BYTES
    if upload.size > cap:
        raise PayloadTooLarge(
            f"{upload.name} is {upload.size / 2**20:.1f} MB, over the "
            f"{cap / 2**20:.0f} MB cap for weights (LABELLOOP_WEIGHTS_MAX_BYTES)",
            code="weights_too_large",
        )
    head = upload.read(4)
    upload.seek(0)
    if not any(head.startswith(magic) for magic in TORCH_MAGIC):
        raise ValidationFailed(
            f"{upload.name} is not a PyTorch weights file (torch.save output, e.g. "
            "resnet18-f37072fd.pth)",
            code="not_weights",
        )
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    sha = digest.hexdigest()
    key = f"weights/{project.slug}/{sha[:16]}.pth"
    if not default_storage.exists(key):
        key = default_storage.save(key, upload)
    return key, sha


class ProjectBackbonesView(APIView):
    parser_classes = [MultiPartParser]

    @extend_schema(responses=BackboneSerializer(many=True), summary="Backbones, newest first")
    def get(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.VIEWER)
        backbones = list(Backbone.objects.filter(project=project).order_by("-number")[:100])
        current = backbones[0].pk if backbones else None
        return Response(BackboneSerializer(backbones, many=True, context={"current": current}).data)

    @extend_schema(
        request={"multipart/form-data": BackboneImportSerializer},
        responses={202: dict, 400: ErrorSerializer, 413: ErrorSerializer},
        summary="Import pretrained weights (202: the worker checks and imports them)",
    )
    def post(self, request: Request, project_id: int) -> Response:
        project = project_get_for_user(user=request.user, project_id=project_id, role=Role.ADMIN)
        form = BackboneImportSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        upload = form.validated_data["file"]
        key, sha = _store_upload(project, upload)
        expected = form.validated_data.get("sha256", "").lower()
        if expected and expected != sha:
            raise ValidationFailed(
                f"the file's SHA-256 is {sha}, not {expected}", code="checksum_mismatch"
            )
        params = {"file_key": key, "origin": upload.name[:200], "sha256": sha}
        if "input_size" in form.validated_data:
            params["input_size"] = form.validated_data["input_size"]
        run, _ = backbone_request(
            project=project, trigger=RunTrigger.BACKBONE_IMPORT, params=params, user=request.user
        )
        return Response(
            {"run": run.pk, "status": run.status, "sha256": sha},
            status=status.HTTP_202_ACCEPTED,
        )
