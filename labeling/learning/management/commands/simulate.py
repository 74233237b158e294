"""Simulate active learning through the real product, with an oracle annotator.

    python manage.py simulate --dataset mnist5k --strategy diverse --batch 25 --budget 600 \\
        --seeds 3 --compare random [--dirty 0.15] [--out docs/simulation]
    python manage.py simulate --dataset cifar10k --backbone pretrain --pretrain-minutes 20 \\
        --batch 50 --budget 800 --seeds 3 --compare random

`--dataset cifar10k`: the 10,000 CIFAR-10 photos of ../shared/data/cifar10-train-10k.zip
(shuffled with seed 0: 8,000 pool, 2,000 test; 32 px RGB). `--backbone pretrain` pretrains one
backbone on the pool's images through the worker (a `pretrain` run: no labels involved), and
every project then imports it (a `backbone_import` run) before its first label, so rounds fit
their head on its features; `--backbone FILE` imports weights (torchvision or a backbone file)
the same way; `none` (the default) trains from scratch as before.

Real database, real services, real worker, real Ray: for each strategy and seed a project is
made from MNIST-5k's 4,000-image pool (1,000 held out as the test set) and starts as a user's
would, with no labels: every round the oracle labels the next `--batch` tasks the queue
serves (the first round, the project's cold-start order), a training run retrains and
re-prioritises, and the new model is measured on the held-out test set.
`--variants clean fixmatch` compares the same rounds trained on the labels alone and trained
semi-supervised (the project setting `semi_supervised`: FixMatch on a sample of the unlabeled
pool; `LABELLOOP_SEMI_SUPERVISED_POOL` images).
`--initial-per-class N` instead hands the project N random labels of every class first (the
class-balanced start of Gal et al. 2017, which no real project gets). Writes
`<out>/<name>.csv` (strategy, seed, labels, test accuracy) and `<out>/<name>.png`, and prints
labels-to-90% and labels-to-95% for each strategy.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from labeling.annotations.services import annotation_submit, task_lease_next
from labeling.core.migration_state import require_migrated
from labeling.images.models import Image
from labeling.images.services import images_ingest, ingest_limits
from labeling.images.sources import folder_sources
from labeling.learning.management.commands._simulate_crowd import (
    consensus_accuracy,
    label_round,
    members,
    parse_crowd,
    parse_variant,
    review_all,
)
from labeling.learning.management.commands._simulate_data import (
    CIFAR_ZIP,
    DATASETS,
    write_pool,
)
from labeling.learning.management.commands._simulate_report import (
    plot,
    quality_line,
    summary,
)
from labeling.learning.models import (
    Backbone,
    ModelVersion,
    RunLane,
    RunStatus,
    RunTrigger,
    TrainingRun,
    lane_of,
)
from labeling.learning.runs import run_claim, run_request
from labeling.learning.services import backbone_request
from labeling.learning.worker import Worker
from labeling.learning.writeback import local_checkpoint
from labeling.projects.models import Membership, Project, Role, Strategy
from labeling.projects.services import project_delete
from training.cluster import ensure_ray
from training.models import load_checkpoint
from training.score import score_arrays


class Command(BaseCommand):
    help = "Run the active-learning loop with an oracle and plot accuracy against labels."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--dataset", default="mnist5k", choices=list(DATASETS))
        parser.add_argument(
            "--backbone", default="none", help="none, pretrain, or a weights file to import"
        )
        parser.add_argument("--pretrain-minutes", type=float, default=20.0)
        parser.add_argument("--pretrain-epochs", type=int, default=100)
        parser.add_argument("--zip", default=str(CIFAR_ZIP), help="cifar10-train-10k.zip")
        parser.add_argument("--strategy", default="diverse")
        parser.add_argument("--compare", nargs="*", default=[], help="more strategies to run")
        parser.add_argument("--batch", type=int, default=25, help="labels per round")
        parser.add_argument("--budget", type=int, default=600, help="labels in total")
        parser.add_argument("--seeds", type=int, default=3)
        parser.add_argument(
            "--first-seed", type=int, default=0, help="seeds run from here (more runs, new seeds)"
        )
        parser.add_argument(
            "--initial-per-class",
            type=int,
            default=0,
            help="start with this many random labels of each class (0: an empty project)",
        )
        parser.add_argument("--dirty", type=float, default=0.0, help="share of junk in the pool")
        parser.add_argument(
            "--pool-size", type=int, default=0, help="images of the pool to use (0: all)"
        )
        parser.add_argument(
            "--crowd",
            default="0.02,0.10,0.30,pair:5>3",
            help="the simulated annotators of the crowd variants: error rates and pair:A>B",
        )
        parser.add_argument(
            "--variants",
            nargs="*",
            default=[],
            help="how labels are collected: clean, noisy, noisy+review, majorityN, weightedN "
            "(default: clean only, the perfect oracle); +fixmatch (or fixmatch: clean+fixmatch) "
            "trains the rounds semi-supervised",
        )
        parser.add_argument("--out", type=Path, default=Path("var/simulation"))
        parser.add_argument("--name", default=None, help="file name stem for the CSV and PNG")

    def handle(self, *args, **options) -> None:
        strategies = [options["strategy"], *options["compare"]]
        unknown = [s for s in strategies if s not in Strategy.values]
        if unknown:
            raise CommandError(f"unknown strategy {unknown[0]!r}; known: {Strategy.values}")
        if options["batch"] < 1 or options["budget"] <= options["batch"]:
            raise CommandError("--batch must be >= 1 and --budget more than one batch")
        if not 0 <= options["initial_per_class"] <= 50:
            raise CommandError("--initial-per-class must be between 0 and 50")
        if options["pool_size"] and options["pool_size"] < 100:
            raise CommandError("--pool-size must be at least 100 (or 0: the whole pool)")
        if not 0.0 <= options["dirty"] < 1.0:
            raise CommandError("--dirty must be a share in [0, 1)")
        variants = [parse_variant(v) for v in options["variants"]] or [parse_variant("clean")]
        require_migrated()
        # Label checks run when a review variant asks for them, not after every round.
        settings.LABELLOOP_LABEL_CHECK_MIN_LABELS = 10**9
        # The backbone is this command's to choose (--backbone): no automatic pretraining of
        # the projects it makes.
        settings.LABELLOOP_PRETRAIN_MIN_IMAGES = 0
        ensure_ray()
        out: Path = options["out"]
        out.mkdir(parents=True, exist_ok=True)
        name = options["name"] or (
            "simulation" + (f"-dirty{int(options['dirty'] * 100)}" if options["dirty"] else "")
        )
        if options["dataset"] == "cifar10k" and not Path(options["zip"]).is_file():
            raise CommandError(f"{options['zip']} is missing: pass --zip PATH (see its README)")
        data = DATASETS[options["dataset"]](options)
        pool_x, pool_y, test_x, test_y = data.pool_x, data.pool_y, data.test_x, data.test_y
        size = options["pool_size"] or len(pool_x)
        pool_x, pool_y = pool_x[:size], pool_y[:size]
        data.pool_x, data.pool_y = pool_x, pool_y
        options["data"] = data
        if any(v.crowd for v in variants):
            parse_crowd(options["crowd"], list(data.classes))  # refused before any project
        options["backbone_file"] = self._backbone_file(options)
        rows: list[tuple[str, int, int, float]] = []
        quality: list[tuple[str, int, int, float, int, int]] = []
        names = []
        for strategy in strategies:
            for variant in variants:
                label = strategy if not options["variants"] else f"{strategy} {variant.name}"
                names.append(label)
                options["variant"] = variant
                for seed in range(options["first_seed"], options["first_seed"] + options["seeds"]):
                    curve = self._one(strategy, seed, pool_x, pool_y, test_x, test_y, options)
                    rows += [(label, seed, n, acc) for n, acc, *_ in curve]
                    quality += [(label, seed, *point) for point in curve]
        strategies = names
        csv_path, png_path = out / f"{name}.csv", out / f"{name}.png"
        with csv_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["strategy", "seed", "labels", "test_accuracy"])
            writer.writerows(rows)
        if options["variants"]:
            quality_path = out / f"{name}-labels.csv"
            with quality_path.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(
                    ["variant", "seed", "labels", "test_accuracy", "label_accuracy", "votes",
                     "reviews"]
                )  # fmt: skip
                writer.writerows(quality)
            self.stdout.write(f"wrote {quality_path}")
            for variant in strategies:
                self.stdout.write(quality_line(variant, quality))
        reached = summary(rows, strategies)
        plot(rows, strategies, png_path, title=name)
        self.stdout.write(f"\nwrote {csv_path} and {png_path}")
        for strategy, reach in reached.items():
            cells = ", ".join(
                f"{int(t * 100)}%: {v if v is not None else 'not reached'}"
                for t, v in reach.items()
            )
            self.stdout.write(f"{strategy:>18}  mean labels to {cells}")

    def _one(self, strategy, seed, pool_x, pool_y, test_x, test_y, options):
        """One project's curve: [(labels, test accuracy, share of labels right, votes given,
        reviews decided)] after every round."""
        variant = options["variant"]
        user, _ = get_user_model().objects.get_or_create(username="oracle")
        folder = Path(tempfile.mkdtemp(prefix="labelloop-sim-"))
        project = self._project(strategy, seed, options)
        Membership.objects.create(project=project, user=user, role=Role.ADMIN)
        crowd = parse_crowd(options["crowd"], project.labels) if variant.crowd else []
        users = members(project, crowd)
        rng = np.random.default_rng(1000 + seed)
        try:
            truth = write_pool(options["data"], folder)
            images_ingest(
                project=project, user=user, sources=folder_sources(folder, limits=ingest_limits())
            )
            if options["backbone_file"]:
                self._import_backbone(project, options["backbone_file"])
            names = dict(Image.objects.filter(project=project).values_list("id", "original_name"))
            queued = TrainingRun.objects.filter(project=project, status=RunStatus.QUEUED).first()
            if queued is not None:  # the cold-start ordering the ingest asked for
                worker = Worker()
                worker.execute(_claim(queued, worker.name))
            curve: list[tuple] = []
            votes = reviews = 0

            def measure() -> None:
                nonlocal reviews
                if variant.review:
                    # The reviewer goes through the label check's queue before the round
                    # trains: each point is the model trained after review.
                    reviews += self._review(project, user, truth, names)
                labels, accuracy = self._round(project, seed, test_x, test_y)
                right = consensus_accuracy(project, truth, names)
                curve.append((labels, accuracy, right, votes, reviews))
                self.stdout.write(
                    f"{strategy} {variant.name} seed {seed}: {labels} labels -> {accuracy:.3f}"
                    + (f" (labels right {right:.3f}, {votes} votes)" if variant.crowd else "")
                )

            per_class = options["initial_per_class"]
            if per_class:
                first = [
                    image_id
                    for name in options["data"].classes
                    for image_id in np.random.default_rng(seed).choice(
                        sorted(i for i, n in names.items() if truth[n] == name),
                        per_class,
                        replace=False,
                    )
                ]
                self._label(project, user, truth, names, [int(i) for i in first])
                measure()
            while not curve or curve[-1][0] < options["budget"]:
                if crowd:
                    given = label_round(project, crowd, users, truth, names, options["batch"], rng)
                    if not given:
                        break
                    votes += given
                else:
                    tasks = task_lease_next(project=project, user=user, count=options["batch"])
                    if not tasks:
                        break
                    self._label(project, user, truth, names, [t.image_id for t in tasks])
                measure()
            return curve
        finally:
            project_delete(project=project)
            shutil.rmtree(folder, ignore_errors=True)

    def _project(self, strategy, seed, options) -> Project:
        """The simulated project, set up as the variant asks."""
        variant = options["variant"]
        return Project.objects.create(
            name=f"simulation {strategy} {variant.name} {seed}",
            slug=f"sim-{strategy}-{seed}-{uuid.uuid4().hex[:6]}",
            labels=list(options["data"].classes),
            input_size=options["data"].size,
            input_channels=options["data"].channels,
            strategy=strategy,
            retrain_every=0,
            exploration_fraction=0.1 if strategy != "random" else 0.0,
            annotations_per_image=variant.overlap,
            consensus_method=variant.method,
            semi_supervised=variant.semi,
        )

    def _review(self, project, reviewer, truth, names) -> int:
        """A label check on the labels so far, then the reviewer decides its queue."""
        run, _ = run_request(project=project, trigger=RunTrigger.LABEL_CHECK)
        self._execute(run, lane=lane_of(RunTrigger.LABEL_CHECK))
        return review_all(project, reviewer, truth, names)

    def _label(self, project, user, truth, names, image_ids) -> None:
        for image in Image.objects.filter(pk__in=image_ids).select_related("project"):
            annotation_submit(
                image=image, user=user, label=truth[names[image.id]], client_id=uuid.uuid4()
            )

    def _round(self, project, seed, test_x, test_y) -> tuple[int, float]:
        run, _ = run_request(project=project, trigger=RunTrigger.MANUAL)
        started = time.perf_counter()
        self._execute(run, lane=RunLane.MAIN)
        # A round on a backbone queues its fine-tune: the point is the model after it.
        tune = TrainingRun.objects.filter(
            project=project, trigger=RunTrigger.FINE_TUNE, status="queued"
        ).first()
        if tune is not None:
            self._execute(tune, lane=RunLane.MAIN)
        version = ModelVersion.objects.get(project=project, is_active=True)
        model, _meta = load_checkpoint(local_checkpoint(version.checkpoint_key))
        predicted = score_arrays(model, test_x, strategy="least_confidence")["predicted"]
        accuracy = float((predicted == test_y).mean())
        self.stderr.write(f"  round: {time.perf_counter() - started:.1f}s")
        return run.labels_snapshot, accuracy

    def _backbone_file(self, options) -> str | None:
        """None (train from scratch), the weights file to import, or a backbone pretrained
        now on the pool's images by the product's own pretrain run (once for every project)."""
        choice = options["backbone"]
        if choice == "none":
            return None
        if choice != "pretrain":
            if not Path(choice).is_file():
                raise CommandError(f"--backbone {choice}: no such file")
            return choice
        user, _ = get_user_model().objects.get_or_create(username="oracle")
        project = Project.objects.create(
            name=f"pretraining {uuid.uuid4().hex[:6]}",
            slug=f"sim-pretrain-{uuid.uuid4().hex[:6]}",
            labels=list(options["data"].classes),
            input_size=options["data"].size,
            input_channels=options["data"].channels,
            retrain_every=0,
        )
        folder = Path(tempfile.mkdtemp(prefix="labelloop-sim-"))
        target = Path(options["out"]) / f"backbone-{options['dataset']}.pt"
        try:
            write_pool(options["data"], folder)
            images_ingest(project=project, user=user,
                          sources=folder_sources(folder, limits=ingest_limits()))  # fmt: skip
            TrainingRun.objects.filter(project=project).update(status=RunStatus.CANCELLED)
            params = {"minutes": options["pretrain_minutes"], "epochs": options["pretrain_epochs"]}
            run, _ = run_request(project=project, trigger=RunTrigger.PRETRAIN, params=params)
            started = time.perf_counter()
            self._execute(run, lane=RunLane.BACKGROUND)
            backbone = Backbone.objects.get(run=run)
            shutil.copy(local_checkpoint(backbone.file_key), target)
            m = backbone.metrics
            self.stdout.write(
                f"pretrained {backbone.arch} (width {backbone.width}) on {backbone.images_seen} "
                f"images: {m['epochs_run']} epochs, {m['seconds']:.0f} s training, "
                f"{time.perf_counter() - started:.0f} s in all; probe {m.get('probe')}; "
                f"loss {m['loss_curve'][:1]} -> {m['loss_curve'][-1:]}; kept as {target}"
            )
        finally:
            project_delete(project=project)
            shutil.rmtree(folder, ignore_errors=True)
        return str(target)

    def _import_backbone(self, project, path: str) -> None:
        params = {"source": str(Path(path).resolve()), "input_size": project.input_size}
        run, _ = backbone_request(
            project=project, trigger=RunTrigger.BACKBONE_IMPORT, params=params
        )
        self._execute(run, lane=RunLane.BACKGROUND)  # no labels yet: it queues no round

    def _execute(self, run, *, lane: str) -> None:
        worker = Worker()
        worker.execute(_claim(run, worker.name, lane=lane))
        run.refresh_from_db()
        if run.status != "succeeded":
            raise CommandError(f"run {run.pk} {run.status}: {run.error[:2000]}")


def _claim(run, name: str, lane: str = RunLane.MAIN):
    """This simulation's own run (by id): another simulation on the same database keeps its
    runs."""
    claimed = run_claim(worker=name, lane=lane, run_id=run.pk)
    if claimed is None:
        raise CommandError("another worker took the simulation's run; stop other workers first")
    return claimed
