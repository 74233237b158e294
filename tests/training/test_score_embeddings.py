"""Scoring a model on a backbone from the backbone's stored features (`score_features`): the
same result as scoring it on pixels through the ResNet on Ray (`run_scoring`), for every
strategy, without reading an image.

    .venv/bin/python -m pytest tests/training/test_score_embeddings.py -p no:django -q

The model is the one a round on a backbone makes (`training.rounds`): a real ResNet-18 (width
4, random weights) and a head fitted on its features of 100 real digits, with dropout 0.3 so
BALD has masks to sample. "Stored" features are what `training.embed` keeps: float16.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.training.conftest import CLASSES, Digits, write_pngs
from training.backbones import Backbone, build_resnet
from training.contracts import STRATEGIES, ImageRef, ScoreResult, ScoreSpec
from training.embed import embed_arrays
from training.head import fit_head
from training.models import (
    BACKBONE_CLASSIFIER,
    build_model,
    checkpoint_meta,
    classifier_from_backbone,
    save_checkpoint,
)
from training.score import run_scoring, score_features

POOL = 120
LABELED = 30  # the first ones: scored for their predictions, never selected


@dataclass(frozen=True)
class Scored:
    checkpoint: str
    items: tuple[ImageRef, ...]  # POOL digits, then one file that is not an image
    features: np.ndarray  # (POOL, D) float16, as stored
    cache_dir: str


@pytest.fixture(scope="module")
def scored(digits: Digits, tmp_path_factory: pytest.TempPathFactory) -> Scored:
    root = tmp_path_factory.mktemp("score-embeddings")
    torch.manual_seed(0)
    resnet = build_resnet("resnet18", width=4, stem="small", in_channels=1, num_classes=0)
    backbone = Backbone(resnet, mean=[33.0], std=[78.0]).eval()
    x = digits.x[:POOL]
    features = embed_arrays(backbone, x)
    head = fit_head(features[:100], digits.y[:100], 10)
    model = classifier_from_backbone(
        backbone,
        backbone.info(),
        classes=CLASSES,
        dropout=0.3,
        head_weight=head.fc.weight.detach(),
        head_bias=head.fc.bias.detach(),
        unit_features=True,
    )
    meta = checkpoint_meta(model, arch=BACKBONE_CLASSIFIER, classes=CLASSES, input_size=28,
                           input_channels=1, dropout=0.3)  # fmt: skip
    save_checkpoint(str(root / "model.pt"), model, meta)
    items = write_pngs(root / "images", x)
    junk = root / "images" / "not-an-image.png"
    junk.write_bytes(b"not a png at all")
    items.append(ImageRef("junk", "0" * 64, str(junk)))
    return Scored(str(root / "model.pt"), tuple(items), features, str(root / "cache"))


def spec_for(s: Scored, strategy: str, **changes) -> ScoreSpec:
    return ScoreSpec(
        checkpoint_path=s.checkpoint,
        items=s.items,
        cache_dir=s.cache_dir,
        strategy=strategy,
        select_size=20,
        exploration_fraction=0.1,
        candidates=tuple(it.key for it in s.items[LABELED:]),
        seed=7,
        **changes,
    )


def from_stored(s: Scored, spec: ScoreSpec, features: np.ndarray | None = None) -> ScoreResult:
    keys = [it.key for it in s.items[:POOL]]
    rows = s.features if features is None else features
    return score_features(spec, keys, rows, failed=("junk",))


def batch(result: ScoreResult, size: int = 20) -> set[str]:
    return {result.keys[i] for i in np.flatnonzero(result.priority < size)}


def exact_features(digits: Digits) -> np.ndarray:
    """The same backbone's features in float32, unrounded: what the scoring actors compute."""
    torch.manual_seed(0)
    resnet = build_resnet("resnet18", width=4, stem="small", in_channels=1, num_classes=0)
    backbone = Backbone(resnet, mean=[33.0], std=[78.0]).eval()
    with torch.inference_mode():
        return backbone(torch.as_tensor(digits.x[:POOL])).numpy()


def assert_same_scoring(stored: ScoreResult, pixels: ScoreResult, strategy: str) -> None:
    """Same rows, failures and classes; probabilities, scores and embeddings within float16
    rounding; the same predictions wherever two classes do not tie within it; the same queue
    up to swaps of scores that tie within it."""
    assert stored.keys == pixels.keys and stored.failed_items == pixels.failed_items
    assert stored.classes == pixels.classes
    np.testing.assert_allclose(stored.probabilities, pixels.probabilities, atol=5e-3)
    np.testing.assert_allclose(stored.scores, pixels.scores, atol=5e-3)
    np.testing.assert_allclose(
        stored.embeddings.astype(np.float32), pixels.embeddings.astype(np.float32), atol=5e-3
    )
    top2 = np.sort(pixels.probabilities, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.01
    assert (stored.predicted[clear] == pixels.predicted[clear]).all(), strategy
    if strategy == "random":  # a permutation drawn from the seed alone: the very same one
        assert (stored.priority == pixels.priority).all()
        return
    labeled = {it for it in stored.keys[:LABELED]}
    assert not batch(stored) & labeled and not batch(pixels) & labeled
    overlap = len(batch(stored) & batch(pixels)) / 20
    assert overlap >= 0.8, (strategy, overlap)
    # After the batch, the other candidates by score: in the pixel path's order too.
    in_order = pixels.scores[np.argsort(stored.priority)[20 : POOL - LABELED]]
    assert (np.diff(in_order) <= 5e-3).all(), strategy


def test_stored_features_give_the_resnets_scores_and_queue_for_every_strategy(
    ray_local, scored: Scored, digits: Digits
):
    exact = exact_features(digits)
    for strategy in STRATEGIES:
        spec = spec_for(scored, strategy)
        pixels = run_scoring(spec)
        assert pixels.keys == tuple(it.key for it in scored.items[:POOL])
        assert pixels.failed_items == ("junk",)
        assert_same_scoring(from_stored(scored, spec), pixels, strategy)
        # Unrounded, the acquisition batch is the pixel path's exactly (BALD's dropout masks,
        # `diverse`'s typicality and k-center alike); only float rounding differs.
        unrounded = from_stored(scored, spec, exact)
        np.testing.assert_allclose(unrounded.scores, pixels.scores, atol=1e-5)
        assert batch(unrounded) == batch(pixels), strategy


def test_scoring_from_features_reads_no_image(scored: Scored, tmp_path: Path):
    """No file at all behind the items: stored features are all it needs (no Ray either)."""
    gone = tuple(
        ImageRef(it.key, it.sha256, str(tmp_path / "deleted.png")) for it in scored.items[:POOL]
    )
    spec = ScoreSpec(
        checkpoint_path=scored.checkpoint,
        items=gone,
        cache_dir=str(tmp_path / "empty-cache"),
        strategy="diverse",
        select_size=10,
    )
    rng_before = torch.get_rng_state()
    result = score_features(spec, [it.key for it in gone], scored.features)
    assert torch.equal(torch.get_rng_state(), rng_before)  # reading the head draws nothing
    assert len(result.keys) == POOL and result.failed_items == ()
    assert sorted(result.priority.tolist()) == list(range(POOL))
    assert not (tmp_path / "empty-cache").exists()


def test_items_without_features_or_a_model_without_a_backbone_are_refused(scored, tmp_path):
    spec = spec_for(scored, "margin")
    keys = [it.key for it in scored.items[: POOL - 1]]
    with pytest.raises(ValueError, match="no features and no failure for 1 items"):
        score_features(spec, keys, scored.features[: POOL - 1], failed=("junk",))
    with pytest.raises(ValueError, match="2 keys for 3 feature rows"):
        score_features(spec, ["a", "b"], scored.features[:3])
    cnn = build_model("seed_cnn", num_classes=10, input_size=28, input_channels=1)
    meta = checkpoint_meta(cnn, arch="seed_cnn", classes=CLASSES, input_size=28,
                           input_channels=1, dropout=0.5)  # fmt: skip
    save_checkpoint(str(tmp_path / "cnn.pt"), cnn, meta)
    with pytest.raises(ValueError, match="score it on pixels"):
        score_features(
            ScoreSpec(checkpoint_path=str(tmp_path / "cnn.pt"), items=(), cache_dir=""), [], []
        )
