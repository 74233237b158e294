"""The hand-over in the product: a project with a backbone orders its queue typicality-first
(TypiClust) while its labels are few, then by its strategy; each round's metrics say which
picker chose the batch.

    .venv/bin/python -m pytest tests/labeling/learning/test_handover_rounds.py -q

Through the worker: the 60-digit backbone project of test_score_embeddings.py (a random
ResNet-18 of width 4 imported through the API), two rounds at 20 and 32 labels with the
hand-over at 3 labels per class (30 labels for ten digits).
"""

from __future__ import annotations

import numpy as np
import pytest

import labeling.learning.jobs.scoring
from labeling.images.models import QUEUE_STATUSES, Image
from labeling.learning.jobs.scoring import round_picker
from labeling.learning.models import RunStatus, TrainingRun
from tests.factories import digits_project_from, label_first
from tests.labeling.learning.test_score_embeddings import (  # noqa: F401 (fixtures)
    a_round,
    import_backbone,
    one_torch_thread,
    sixty_pngs,
)
from training import acquisition, handover

pytestmark = pytest.mark.django_db(transaction=True)

BATCH = 8


@pytest.fixture
def digits(sixty_pngs, alice, bob):  # noqa: F811 (sixty_pngs is the imported fixture)
    """(A 60-digit project with no model, no backbone yet, no cold-start run; the truth.)"""
    folder, truth = sixty_pngs
    project = digits_project_from(
        folder, admin=alice, annotator=bob, name="Hand-over", retrain_every=0
    )
    TrainingRun.objects.filter(project=project).update(status=RunStatus.CANCELLED)  # cold start
    return project, truth


@pytest.fixture
def scorings(monkeypatch):
    """Each round's (ScoreSpec, ScoreResult) from the stored-embedding scorer; a batch of 8."""
    seen = []
    real = labeling.learning.jobs.scoring.score_features

    def spy(spec, keys, features, **kwargs):
        result = real(spec, keys, features, **kwargs)
        seen.append((spec, result))
        return result

    monkeypatch.setattr(labeling.learning.jobs.scoring, "score_features", spy)
    monkeypatch.setattr(labeling.learning.jobs.scoring, "SELECT_SIZE", BATCH)
    return seen


def queue_head(project) -> list[str]:
    """The waiting images an annotator is served first (highest priority first)."""
    waiting = Image.objects.filter(project=project, status__in=QUEUE_STATUSES)
    return [str(i) for i in waiting.order_by("-priority").values_list("id", flat=True)[:BATCH]]


def batch_by(spec, result, picker: str) -> list[str]:
    """The batch ``picker`` makes of the round's scores and embeddings (candidates only)."""
    wanted = set(spec.candidates)
    cand = np.array([i for i, k in enumerate(result.keys) if k in wanted])
    other = np.array([i for i, k in enumerate(result.keys) if k not in wanted])
    order, used = handover.rank(
        result.scores[cand],
        picker=picker,
        strategy=spec.strategy,
        embeddings=result.embeddings[cand],
        batch_size=BATCH,
        seed=spec.seed,
        labeled_embeddings=result.embeddings[other],
    )
    assert used == picker
    return [result.keys[cand[i]] for i in order[:BATCH]]


def test_a_backbone_project_picks_typical_images_while_labels_are_few_then_by_its_strategy(
    digits, alice, as_user, tmp_path, ray_session, settings, scorings, monkeypatch
):
    project, truth = digits
    settings.LABELLOOP_PROMOTE_ONLY_IF_NOT_WORSE = False  # its check scores on pixels
    monkeypatch.setattr(handover, "HANDOVER_LABELS_PER_CLASS", 3)
    import_backbone(project, alice, as_user, tmp_path)

    label_first(project, alice, truth, 20)
    first = a_round(project)
    spec, result = scorings[-1]
    assert spec.picker == result.picker == handover.TYPICAL
    assert first.run.metrics["picker"] == "typical"
    typical = batch_by(spec, result, handover.TYPICAL)
    assert queue_head(project) == typical
    assert typical != batch_by(spec, result, handover.UNCERTAIN)  # not what diverse picks

    label_first(project, alice, truth, 32, start=20)
    second = a_round(project)
    spec, result = scorings[-1]
    assert spec.picker == result.picker == handover.UNCERTAIN
    assert second.run.metrics["picker"] == "uncertain"
    wanted = set(spec.candidates)
    cand = [i for i, k in enumerate(result.keys) if k in wanted]
    diverse = acquisition.rank(
        result.scores[cand],
        strategy="diverse",
        embeddings=result.embeddings[cand],
        batch_size=BATCH,
        seed=spec.seed,
        labeled_embeddings=result.embeddings[
            [i for i in range(len(result.keys)) if i not in set(cand)]
        ],
    )
    assert queue_head(project) == [result.keys[cand[i]] for i in diverse[:BATCH]]


def test_round_picker_hands_over_only_in_a_project_with_a_backbone(digits, monkeypatch):
    project, _ = digits
    monkeypatch.setattr(handover, "HANDOVER_LABELS_PER_CLASS", 5)
    # Trained on its labels alone, or with FixMatch: the strategy picks from the start.
    assert round_picker(project, labels=0) == handover.UNCERTAIN
    project.semi_supervised = True
    assert round_picker(project, labels=0) == handover.UNCERTAIN
    monkeypatch.setattr(labeling.learning.jobs.scoring, "backbone_newest", lambda p: "a backbone")
    assert round_picker(project, labels=49) == handover.TYPICAL
    assert round_picker(project, labels=50) == handover.UNCERTAIN
    monkeypatch.setattr(handover, "HANDOVER_LABELS_PER_CLASS", 0)  # off
    assert round_picker(project, labels=0) == handover.UNCERTAIN
