"""Backbone runs (the ``background`` lane): ``pretrain`` learns a backbone from every image of
the project, self-supervised (``training.pretrain``); ``backbone_import`` brings pretrained
weights (a torchvision ResNet-18/50 ``.pth`` or a LabelLoop backbone file) from an upload, a
path on the worker or an http(s) URL (``training.weights``). Both then embed every image with
it and score it on the labels so far (k-NN and linear probe), and register it in one
write-back: the backbone, its file and every embedding, or nothing. A round queued after it
fits its head on the new features (``labeling.learning.jobs.head``).

    .venv/bin/python -m pytest tests/labeling/learning/test_backbones.py -q
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction

from labeling.core.storage import file_sha256
from labeling.images.models import Image, ImageStatus
from labeling.learning.backbones import backbone_register, embeddings_write
from labeling.learning.jobs.base import Job, RunError, run_workdir
from labeling.learning.models import Backbone, RunTrigger
from labeling.learning.services import run_after_backbone
from labeling.learning.writeback import cache_dir, image_refs, local_path
from labeling.projects.labels import project_labels_for_write
from training.backbones import (
    BackboneLayoutError,
    backbone_from_torchvision,
    is_backbone_file,
    load_backbone,
    save_backbone,
)
from training.contracts import EmbedSpec, PretrainSpec
from training.embed import run_embedding
from training.head import probe
from training.pretrain import run_pretrain
from training.weights import WeightsError, fetch_weights

logger = logging.getLogger(__name__)


@dataclass
class Built:
    """A backbone file, ready to register with its embeddings."""

    path: str
    info: dict
    metrics: dict
    keys: tuple[str, ...]
    embeddings: np.ndarray
    images_seen: int
    origin: str


class BackboneJob(Job):
    """What both kinds share: embed every image, probe, register."""

    source: str = Backbone.Source.PRETRAIN
    done = "backbone registered"

    def workdir(self) -> Path:
        return run_workdir(self.run)

    def pool(self) -> tuple:
        rows = Image.objects.filter(project=self.project).values_list("id", "sha256", "storage_key")
        return tuple(image_refs(list(rows.order_by("id"))))

    def finish(self, path: str, metrics: dict, *, items: tuple, seen: int, origin: str) -> Built:
        _, info = load_backbone(path)
        embedded = self.stage("embed", lambda: self._embed(path, items))
        metrics = metrics | {"probe": self.stage("probe", lambda: self._probe(embedded))}
        metrics["failed_items"] = len(embedded.failed_items)
        # A backbone without an input size of its own sees the project's images as they are.
        size = info.get("input_size") or self.project.input_size
        info = info | {"embed_dim": int(embedded.embeddings.shape[1]), "input_size": size}
        return Built(path, info, metrics, embedded.keys, embedded.embeddings, seen, origin)

    def _embed(self, path: str, items: tuple):
        spec = EmbedSpec(
            backbone_path=path,
            items=items,
            cache_dir=str(cache_dir()),
            input_size=self.project.input_size,
            input_channels=self.project.input_channels,
        )
        return run_embedding(spec, progress=lambda s, f: self.progress("embed", f))

    def _probe(self, embedded) -> dict:
        """k-NN and linear-probe accuracy of the features on the consensus labels so far."""
        classes, _ = project_labels_for_write(self.project)
        index = {name: i for i, name in enumerate(classes)}
        labeled = dict(
            Image.objects.filter(project=self.project, status=ImageStatus.LABELED)
            .exclude(consensus_label=None)
            .values_list("id", "consensus_label")
        )
        rows = [
            (n, index[labeled[int(key)]])
            for n, key in enumerate(embedded.keys)
            if labeled.get(int(key)) in index
        ]
        if not rows:
            return {"n": 0, "note": "no labels yet"}
        positions, labels = zip(*rows, strict=True)
        features = embedded.embeddings[list(positions)].astype(np.float32)
        return probe(features, np.array(labels, dtype=np.int64))

    def write_back(self, result: Built) -> dict:
        backbone = backbone_register(
            project=self.project,
            run=self.run,
            source=self.source,
            path=result.path,
            info=result.info,
            metrics=result.metrics,
            origin=result.origin,
            images_seen=result.images_seen,
        )
        written = embeddings_write(backbone, result.keys, result.embeddings)
        project = self.project
        transaction.on_commit(lambda: run_after_backbone(project=project))
        return result.metrics | {"backbone": backbone.number, "embeddings": written}


class PretrainJob(BackboneJob):
    """Self-supervised pretraining on every image of the project (resumable: a worker that
    dies mid-way leaves a state file the next attempt continues from)."""

    trigger = RunTrigger.PRETRAIN
    spans = {
        "snapshot": (0.0, 0.02),
        "pretrain": (0.02, 0.9),
        "embed": (0.9, 0.97),
        "probe": (0.97, 0.98),
        "write-back": (0.98, 1.0),
    }

    def compute(self) -> Built:
        items = self.stage("snapshot", self.pool)
        if len(items) < 16:
            raise RunError(f"pretraining needs at least 16 images; the project has {len(items)}")
        workdir, params, project = self.workdir(), self.run.params, self.project
        spec = PretrainSpec(
            items=items,
            cache_dir=str(cache_dir()),
            input_size=project.input_size,
            input_channels=project.input_channels,
            backbone_path=str(workdir / "backbone.pt"),
            state_path=str(workdir / "pretrain-state.pt"),
            width=settings.LABELLOOP_PRETRAIN_WIDTH,
            epochs=int(params.get("epochs") or settings.LABELLOOP_PRETRAIN_EPOCHS),
            minutes=float(params.get("minutes") or settings.LABELLOOP_PRETRAIN_MINUTES),
            flip=project.input_channels == 3,  # photos; never mirror digits or letters
            num_threads=settings.LABELLOOP_TRAIN_THREADS,
            num_workers=settings.LABELLOOP_PRETRAIN_WORKERS,
            seed=self.run.pk,
        )
        result = self.stage(
            "pretrain",
            lambda: run_pretrain(
                spec,
                progress=lambda s, f: self.progress("pretrain", f),
                should_stop=self.context.interrupted,
            ),
        )
        if not result.backbone_path:
            # Stopped inside the stage (cancelled, or the worker is shutting down and the
            # state file lets the next one resume): the stage boundary raises which.
            self.stage("embed", lambda: None)
            raise RunError("pretraining stopped before it finished")
        return self.finish(
            result.backbone_path, dict(result.metrics), items=items, seen=len(items), origin=""
        )


class ImportBackboneJob(BackboneJob):
    """Pretrained weights: an admin's upload (``params["file_key"]``, in the store) or the
    deployment's ``LABELLOOP_BACKBONE_WEIGHTS`` (``params["source"]``: a path on the worker or
    an http(s) URL, downloaded once into the data dir with a size cap and an optional
    SHA-256)."""

    trigger = RunTrigger.BACKBONE_IMPORT
    source = Backbone.Source.IMPORT
    spans = {
        "fetch": (0.0, 0.2),
        "convert": (0.2, 0.25),
        "embed": (0.25, 0.95),
        "probe": (0.95, 0.97),
        "write-back": (0.97, 1.0),
    }
    done = "backbone imported"

    def compute(self) -> Built:
        params = self.run.params
        origin = params.get("origin") or params.get("source", "")
        path = self.stage("fetch", lambda: self._fetch(params))
        target = str(self.workdir() / "backbone.pt")
        self.stage("convert", lambda: self._convert(path, target, params))
        items = self.pool()
        return self.finish(target, {"origin": origin}, items=items, seen=0, origin=origin)

    def _fetch(self, params: dict) -> str:
        expected = (params.get("sha256") or "").lower() or None
        try:
            if params.get("file_key"):
                path = local_path(params["file_key"])
                if expected and file_sha256(path) != expected:
                    raise WeightsError(
                        f"the uploaded file's SHA-256 is {file_sha256(path)}, not {expected}"
                    )
                return path
            return str(
                fetch_weights(
                    params["source"],
                    Path(settings.DATA_DIR) / "cache" / "weights",
                    max_bytes=settings.LABELLOOP_WEIGHTS_MAX_BYTES,
                    sha256=expected,
                )
            )
        except WeightsError as exc:
            raise RunError(str(exc)) from exc

    def _convert(self, path: str, target: str, params: dict) -> None:
        """A LabelLoop backbone file as it is; torchvision weights with ImageNet's
        normalisation, at the input size asked for."""
        try:
            if is_backbone_file(path):
                backbone, _ = load_backbone(path)
            else:
                size = int(params.get("input_size") or settings.LABELLOOP_BACKBONE_INPUT_SIZE)
                backbone = backbone_from_torchvision(path, input_size=size)
        except (BackboneLayoutError, WeightsError) as exc:
            raise RunError(str(exc)) from exc
        meta = {"origin": params.get("origin") or params.get("source", "")}
        save_backbone(target, backbone.resnet, **backbone.info(), meta=meta)
