"""Weighted consensus (issue 27): what a refit costs, at two sizes in one run.

    LABELLOOP_DATA_DIR=/tmp/ll-bench-consensus .venv/bin/python -m bench.consensus

Two parts, each at 10k and 100k multi-vote images (three votes each, 10 classes, a crowd of
annotators at 2%, 10% and 30% uniform errors):

- the fit alone: ``labeling.annotations.weighted.dawid_skene`` on the votes as arrays;
- through the product: ``consensus_refit`` on a project holding those images and votes in
  PostgreSQL (read every counted vote, fit, store the model, judge every image again).

Prints seconds and the 100k/10k ratio of each (linear scaling reads 10x), and the share of
images the weighted consensus and the majority got right.
"""

from __future__ import annotations

import os
import time
import uuid

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "labeling.settings")
os.environ.setdefault("LABELLOOP_DEBUG", "true")

import numpy as np

SIZES = (10_000, 100_000)
RATES = (0.02, 0.10, 0.30)
K = 10


def crowd(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, K, n)
    given = []
    for rate in RATES:
        wrong = rng.random(n) < rate
        given.append(np.where(wrong, (truth + rng.integers(1, K, n)) % K, truth))
    return truth, np.stack(given)  # (annotators, n)


def fit_alone(n: int) -> tuple[float, float, float]:
    from labeling.annotations.weighted import Votes, dawid_skene

    truth, given = crowd(n)
    a = len(RATES)
    votes = Votes(np.tile(np.arange(n), a), np.repeat(np.arange(a), n), given.ravel(), n, a)
    started = time.perf_counter()
    fit = dawid_skene(votes, K)
    seconds = time.perf_counter() - started
    counts = np.zeros((n, K))
    np.add.at(counts, (votes.items, votes.labels), 1)
    majority = (counts + np.random.default_rng(1).random(counts.shape) * 1e-3).argmax(axis=1)
    return (
        seconds,
        float((fit.posterior.argmax(1) == truth).mean()),
        float((majority == truth).mean()),
    )


def through_product(n: int) -> float:
    from django.contrib.auth import get_user_model

    from labeling.annotations.consensus import consensus_refit
    from labeling.annotations.models import Annotation
    from labeling.images.models import Image, ImageStatus
    from labeling.projects.models import ConsensusMethod, Project
    from labeling.projects.services import project_delete

    _, given = crowd(n, seed=2)
    classes = [str(c) for c in range(K)]
    project = Project.objects.create(
        name=f"bench consensus {n} {uuid.uuid4().hex[:6]}",
        slug=f"bench-consensus-{uuid.uuid4().hex[:8]}",
        labels=classes,
        annotations_per_image=3,
        consensus_method=ConsensusMethod.WEIGHTED,
        retrain_every=0,
    )
    users = [
        get_user_model().objects.get_or_create(username=f"bench-crowd-{i}")[0]
        for i in range(len(RATES))
    ]
    try:
        for start in range(0, n, 5000):
            stop = min(n, start + 5000)
            images = Image.objects.bulk_create(
                Image(
                    project=project,
                    sha256=f"{i:064x}",
                    storage_key=f"bench/{i}",
                    width=28,
                    height=28,
                    mode="L",
                    format="PNG",
                    original_name=f"{i}.png",
                    size_bytes=100,
                    status=ImageStatus.PARTIAL,
                )
                for i in range(start, stop)
            )
            Annotation.objects.bulk_create(
                Annotation(
                    image=image,
                    annotator=user,
                    label=classes[given[a, start + j]],
                    client_id=uuid.uuid4(),
                )
                for j, image in enumerate(images)
                for a, user in enumerate(users)
            )
        started = time.perf_counter()
        report = consensus_refit(project=project)
        seconds = time.perf_counter() - started
        assert report["weighted"], report
        return seconds
    finally:
        project_delete(project=project)


def main() -> None:
    import django

    django.setup()
    from labeling.core.migration_state import require_migrated

    require_migrated()
    print(f"weighted consensus refit, {len(RATES)} votes an image, {K} classes")
    print(
        f"{'images':>8} {'fit s':>8} {'refit s':>9} {'weighted right':>15} {'majority right':>15}"
    )
    fits, refits = [], []
    for n in SIZES:
        seconds, weighted, majority = fit_alone(n)
        refit = through_product(n)
        fits.append(seconds)
        refits.append(refit)
        print(f"{n:>8} {seconds:>8.2f} {refit:>9.1f} {weighted:>15.4f} {majority:>15.4f}")
    print(
        f"ratio 100k/10k: fit {fits[1] / fits[0]:.1f}x, refit through the product "
        f"{refits[1] / refits[0]:.1f}x (linear: 10x)"
    )


if __name__ == "__main__":
    main()
