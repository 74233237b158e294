"""Simulated annotators for ``manage.py simulate --crowd``: people who make mistakes, and a
reviewer who knows the truth.

A crowd is a comma-separated list of annotators: a number is an error rate (that share of
their answers is a uniformly drawn wrong class), ``pair:A>B`` is someone who always answers B
when the truth is A and is otherwise right. ``--crowd 0.02,0.10,0.30,pair:5>3`` is the issue's
crowd. Each variant of a crowd run says how the project collects and cleans its labels:

- ``clean``: one annotator who is always right (the reference curve);
- ``noisy``: one vote per image, each from a crowd member drawn at random;
- ``noisy+review``: the same, and before every round a label check fills the review queue
  and a reviewer who knows the truth decides it (confirm or relabel): the round trains on
  the reviewed labels;
- ``majority<N>`` / ``weighted<N>``: N votes per image from different crowd members, made one
  label by majority vote or by the annotators' fitted reliability (Dawid-Skene).

Any of them with ``+fixmatch`` (``fixmatch`` alone: ``clean+fixmatch``) runs its projects with
``semi_supervised`` on: every round also learns from a sample of the unlabeled pool.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, replace

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from labeling.annotations.models import LabelReview, ReviewState
from labeling.annotations.reviews import review_decide
from labeling.annotations.services import annotation_submit, task_lease_next
from labeling.images.models import Image, ImageStatus
from labeling.projects.models import ConsensusMethod, Membership, Project, Role

_VARIANT = re.compile(r"^(clean|noisy|noisy\+review|majority[2-9]|weighted[2-9])(\+fixmatch)?$")
SEMI = "+fixmatch"  # the suffix that turns a variant's projects semi-supervised


@dataclass(frozen=True)
class Variant:
    name: str
    overlap: int  # votes per image
    method: str  # ConsensusMethod
    crowd: bool  # False: the perfect oracle
    review: bool  # a reviewer who knows the truth decides the review queue
    semi: bool = False  # the projects train semi-supervised (Project.semi_supervised)


def parse_variant(name: str) -> Variant:
    if name == "fixmatch":
        return replace(parse_variant("clean" + SEMI), name=name)
    if not _VARIANT.match(name):
        raise CommandError(
            f"unknown variant {name!r}: clean, noisy, noisy+review, majorityN, weightedN (N 2-9), "
            f"each optionally with {SEMI}; or fixmatch"
        )
    if name.endswith(SEMI):
        return replace(parse_variant(name.removesuffix(SEMI)), name=name, semi=True)
    if name == "clean":
        return Variant(name, 1, ConsensusMethod.MAJORITY, crowd=False, review=False)
    if name.startswith("noisy"):
        return Variant(name, 1, ConsensusMethod.MAJORITY, crowd=True, review=name.endswith("w"))
    method = ConsensusMethod.WEIGHTED if name.startswith("weighted") else ConsensusMethod.MAJORITY
    return Variant(name, int(name[-1]), method, crowd=True, review=False)


@dataclass(frozen=True)
class Annotator:
    """One simulated person: ``rate`` of uniform mistakes, or a fixed ``pair`` (truth, said)."""

    username: str
    rate: float = 0.0
    pair: tuple[str, str] | None = None

    def answer(self, truth: str, classes: list[str], rng: np.random.Generator) -> str:
        if self.pair is not None:
            return self.pair[1] if truth == self.pair[0] else truth
        if rng.random() < self.rate:
            return str(rng.choice([c for c in classes if c != truth]))
        return truth


def parse_crowd(spec: str, classes: list[str]) -> list[Annotator]:
    crowd = []
    for i, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
        if part.startswith("pair:"):
            a, _, b = part[5:].partition(">")
            if a not in classes or b not in classes or a == b:
                raise CommandError(f"--crowd {part!r}: pair:A>B takes two different classes")
            crowd.append(Annotator(f"crowd{i}-pair-{a}-{b}", pair=(a, b)))
            continue
        try:
            rate = float(part)
        except ValueError:
            raise CommandError(f"--crowd {part!r}: an error rate or pair:A>B") from None
        if not 0 <= rate < 1:
            raise CommandError(f"--crowd {part!r}: an error rate is in [0, 1)")
        crowd.append(Annotator(f"crowd{i}-{rate:g}", rate=rate))
    if not crowd:
        raise CommandError("--crowd names no annotator")
    return crowd


def members(project: Project, crowd: list[Annotator]) -> list:
    """The crowd's user accounts, annotators of ``project``."""
    users = []
    for annotator in crowd:
        user, _ = get_user_model().objects.get_or_create(username=annotator.username)
        Membership.objects.get_or_create(
            project=project, user=user, defaults={"role": Role.ANNOTATOR}
        )
        users.append(user)
    return users


def label_round(
    project: Project,
    crowd: list[Annotator],
    users: list,
    truth: dict[str, str],
    names: dict[int, str],
    batch: int,
    rng: np.random.Generator,
) -> int:
    """Crowd members take tasks from the queue and answer until ``batch`` more images have a
    consensus label (or nobody can be served); returns how many votes they gave."""
    classes = list(project.labels)
    target = _labeled(project) + batch
    votes = 0
    while _labeled(project) < target:
        served = False
        order = rng.permutation(len(crowd)) if len(crowd) > 1 else [0]
        # A few tasks at a time each, so every member answers a share of the images (with
        # one vote an image, the member who labels an image is drawn at random).
        chunk = max(1, batch // (2 * len(crowd)))
        for i in order:
            if project.annotations_per_image == 1 and len(crowd) > 1:
                i = int(rng.integers(len(crowd)))
            need = max(1, min(chunk, target - _labeled(project)))
            tasks = task_lease_next(project=project, user=users[i], count=need)
            for task in tasks:
                image = Image.objects.select_related("project").get(pk=task.image_id)
                label = crowd[i].answer(truth[names[image.pk]], classes, rng)
                annotation_submit(image=image, user=users[i], label=label, client_id=uuid.uuid4())
            served |= bool(tasks)
            votes += len(tasks)
            if _labeled(project) >= target:
                break
        if not served:
            break
    return votes


def review_all(project: Project, reviewer, truth: dict[str, str], names: dict[int, str]) -> int:
    """The reviewer who knows the truth decides every open review; returns how many."""
    decided = 0
    for review in LabelReview.objects.filter(project=project, state=ReviewState.OPEN):
        right = truth[names[review.image_id]]
        review_decide(
            review_id=review.pk,
            user=reviewer,
            decision="confirm" if review.given_label == right else "relabel",
            label=None if review.given_label == right else right,
            decision_id=uuid.uuid4(),
        )
        decided += 1
    return decided


def consensus_accuracy(project: Project, truth: dict[str, str], names: dict[int, str]) -> float:
    """Share of the labeled images whose label is the truth."""
    rows = Image.objects.filter(project=project, status=ImageStatus.LABELED).values_list(
        "pk", "consensus_label"
    )
    pairs = [(truth[names[pk]], label) for pk, label in rows]
    return float(np.mean([t == label for t, label in pairs])) if pairs else float("nan")


def _labeled(project: Project) -> int:
    return Image.objects.filter(project=project, status=ImageStatus.LABELED).count()
