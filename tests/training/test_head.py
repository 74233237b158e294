"""A head on frozen features, the probe score, and embeddings from a backbone (issue 25).

    .venv/bin/python -m pytest tests/training/test_head.py -p no:django -q

The backbone here is a stand-in with the interface of `training.backbones.Backbone` (pixels
0..255 in, (N, embed_dim) features out): a fixed random projection of the pixels with a ReLU,
seeded, so every number below is reproducible. The digits are real MNIST (conftest).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from ray import cloudpickle
from torch import nn

from tests.training.conftest import Digits, write_pngs
from training.backbones import Backbone, build_resnet
from training.contracts import EmbedSpec, ImageRef
from training.embed import embed_arrays, run_embedding
from training.head import (
    UNLABELED_BIAS,
    fit_head,
    head_probabilities,
    probe,
)
from training.inference import predict_probabilities
from training.models import (
    BACKBONE_CLASSIFIER,
    checkpoint_meta,
    classifier_from_backbone,
    load_checkpoint,
    save_checkpoint,
)

DIM = 256  # features of the stand-in backbone


class RandomProjection(nn.Module):
    """Stand-in backbone: flatten, scale to 0..1, a fixed seeded projection, ReLU."""

    def __init__(self, pixels: int = 28 * 28, embed_dim: int = DIM, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.proj = nn.Linear(pixels, embed_dim)
        with torch.no_grad():
            self.proj.weight.copy_(torch.randn(embed_dim, pixels, generator=gen) / 28)
            self.proj.bias.zero_()
        self.embed_dim = embed_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.proj(x.float().flatten(1) / 255.0))


def load_stand_in(path: str, device: torch.device) -> tuple[nn.Module, dict]:
    """The loader `run_embedding` calls in its Ray task, like `backbones.load_backbone`."""
    model = RandomProjection()
    model.load_state_dict(torch.load(path, map_location=device, weights_only=True))
    return model.to(device).eval(), {"embed_dim": model.embed_dim}


@pytest.fixture(scope="module")
def features(digits: Digits) -> np.ndarray:
    return embed_arrays(RandomProjection(), digits.x, batch_size=1000)


def accuracy(head, x: np.ndarray, y: np.ndarray) -> float:
    return float((head_probabilities(head, x).argmax(axis=1) == y).mean())


def one_per_class(y: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.array([rng.choice(np.flatnonzero(y == c)) for c in range(10)])


def test_a_head_on_frozen_features_classifies_held_out_digits(features, digits):
    # Measured: 0.856 on 1,000 train / 500 test (raw pixels give about the same).
    head = fit_head(features[:1000], digits.y[:1000], 10)
    assert accuracy(head, features[4000:4500], digits.y[4000:4500]) > 0.80


def test_one_label_per_class_is_enough_to_beat_chance_by_far(features, digits):
    # Measured: 0.33-0.43 over these seeds; chance is 0.10.
    for seed in range(3):
        idx = one_per_class(digits.y[:4000], seed)
        head = fit_head(features[idx], digits.y[idx], 10, seed=seed)
        assert accuracy(head, features[4000:], digits.y[4000:]) > 0.25


def test_a_class_without_labels_is_never_predicted_and_nothing_is_nan(features, digits):
    x, y = features[:600], digits.y[:600]
    keep = y != 7
    head = fit_head(x[keep], y[keep], 10)
    probs = head_probabilities(head, features[4000:])
    assert np.isfinite(probs).all()
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) != 7).all()
    assert probs[:, 7].max() == 0.0
    assert head.fc.bias[7].item() == UNLABELED_BIAS
    # the sevens go somewhere else, and the other classes are still learned
    others = digits.y[4000:] != 7
    assert accuracy(head, features[4000:][others], digits.y[4000:][others]) > 0.75


def test_a_single_labeled_class_always_wins(features, digits):
    head = fit_head(features[:5], np.full(5, 3), 10)
    probs = head_probabilities(head, features[100:200])
    assert (probs.argmax(axis=1) == 3).all() and np.isfinite(probs).all()


def test_fit_head_is_deterministic_for_a_seed(features, digits):
    before = torch.get_rng_state()
    a = fit_head(features[:300], digits.y[:300], 10, seed=1)
    b = fit_head(features[:300], digits.y[:300], 10, seed=1)
    assert torch.equal(a.fc.weight, b.fc.weight) and torch.equal(a.fc.bias, b.fc.bias)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's RNG is left alone


def test_balanced_class_weights_help_the_rare_class(features, digits):
    y = digits.y[:2000]
    rare = np.flatnonzero(y == 5)[:5]
    idx = np.concatenate([np.flatnonzero(y != 5), rare])
    test_fives = features[4000:][digits.y[4000:] == 5]
    recall = {
        weighting: float(
            (
                head_probabilities(
                    fit_head(features[idx], y[idx], 10, class_weight=weighting), test_fives
                ).argmax(axis=1)
                == 5
            ).mean()
        )
        for weighting in ("balanced", None)
    }
    assert recall["balanced"] > recall[None]  # measured 0.26 against 0.00


def test_bad_input_is_refused_with_the_reason(features, digits):
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.9"):
        fit_head(features[:10], np.arange(10) + 1, 10)
    with pytest.raises(ValueError, match="NaN or inf"):
        fit_head(np.full((4, 3), np.nan), np.array([0, 1, 0, 1]), 2)
    with pytest.raises(ValueError, match=r"labels must be \(N,\)"):
        fit_head(features[:10], digits.y[:9], 10)
    with pytest.raises(ValueError, match="class_weight"):
        fit_head(features[:10], digits.y[:10], 10, class_weight="auto")
    with pytest.raises(ValueError, match=f"features must be \\(N, {DIM}\\)"):
        head_probabilities(fit_head(features[:10], digits.y[:10], 10), features[:5, :10])


def test_backbone_and_head_as_one_checkpoint_give_the_heads_probabilities(digits, tmp_path):
    """The round's model (training.rounds): a real ResNet backbone, a head fitted on its
    features, saved and loaded as one checkpoint, answers as the head does on the features."""
    torch.manual_seed(0)
    resnet = build_resnet("resnet18", width=4, stem="small", in_channels=1, num_classes=0)
    backbone = Backbone(resnet, mean=[33.0], std=[78.0]).eval()
    feats = embed_arrays(backbone, digits.x[:600])
    head = fit_head(feats[:500], digits.y[:500], 10)
    model = classifier_from_backbone(
        backbone,
        backbone.info(),
        classes=[str(c) for c in range(10)],
        head_weight=head.fc.weight.detach(),
        head_bias=head.fc.bias.detach(),
        unit_features=True,
    )
    meta = checkpoint_meta(model, arch=BACKBONE_CLASSIFIER, classes=[str(c) for c in range(10)],
                           input_size=28, input_channels=1, dropout=0.0)  # fmt: skip
    save_checkpoint(str(tmp_path / "m.pt"), model, meta)
    loaded, _ = load_checkpoint(str(tmp_path / "m.pt"))
    x = digits.x[500:600]
    from_model = predict_probabilities(loaded, x)
    from_features = head_probabilities(head, feats[500:600])
    assert np.abs(from_model - from_features).max() < 1e-2  # float16 features on one side
    assert (from_model.argmax(axis=1) == from_features.argmax(axis=1)).mean() > 0.98
    assert torch.allclose(loaded.embed(torch.as_tensor(x)).norm(dim=1), torch.ones(100))


def test_probe_reports_both_accuracies_with_intervals_that_contain_them(features, digits):
    result = probe(features[:300], digits.y[:300], folds=5, k=10)
    assert result["n"] == 300 and result["labels"] == 300 and result["classes"] == 10
    assert result["folds"] == 5 and result["k"] == 10 and result["note"] is None
    for name in ("knn", "linear"):
        score = result[name]
        assert score["n"] == 300
        assert 0.0 <= score["accuracy"] <= 1.0
        assert score["accuracy"] == score["correct"] / 300
        lo, hi = score["interval"]
        assert lo < score["accuracy"] < hi
        assert score["accuracy"] > 0.6  # measured 0.82 (k-NN) and 0.84 (linear)
    assert probe(features[:300], digits.y[:300], folds=5, k=10) == result  # seeded folds


def test_probe_scores_only_classes_with_two_labels_and_says_so(features, digits):
    y = digits.y[:200].copy()
    x = features[:200]
    idx = np.concatenate([np.flatnonzero(y != 9), np.flatnonzero(y == 9)[:1]])
    result = probe(x[idx], y[idx], folds=3, k=50)
    assert result["n"] == len(idx) - 1 and result["labels"] == len(idx)
    assert "9" in result["note"] and "training only" in result["note"]
    assert result["knn"]["n"] == len(idx) - 1


def test_probe_with_too_few_labels_returns_what_it_can_and_says_why(features, digits):
    idx = one_per_class(digits.y[:4000], 0)
    result = probe(features[idx], digits.y[idx])
    assert result["knn"] is None and result["linear"] is None and result["n"] == 0
    assert result["labels"] == 10 and "at least 2 classes with 2 or more labels" in result["note"]


def test_embed_arrays_gives_float16_rows_the_same_in_any_batch_size(digits):
    backbone = RandomProjection()
    x = digits.x[:70]
    whole = embed_arrays(backbone, x, batch_size=256)
    batched = embed_arrays(backbone, x, batch_size=16)
    assert whole.shape == (70, DIM) and whole.dtype == np.float16
    np.testing.assert_allclose(whole.astype(np.float32), batched.astype(np.float32), atol=1e-3)
    assert embed_arrays(backbone, x[:0]).shape == (0, DIM)
    assert not backbone.training
    with pytest.raises(ValueError, match="embed_dim"):
        embed_arrays(nn.Linear(3, 3), x)


@pytest.fixture
def stand_in_by_value() -> Iterator[None]:
    """Ray's workers cannot import a test module (pytest puts its folder on the driver's
    sys.path only): ship the stand-in loader and backbone class to them by value."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


def test_run_embedding_on_ray_keeps_keys_aligned_and_lists_the_corrupt_file(
    ray_local, stand_in_by_value, digits, tmp_path: Path
):
    items = write_pngs(tmp_path / "images", digits.x[:40])
    broken = tmp_path / "images" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    bad = ImageRef("broken", hashlib.sha256(broken.read_bytes()).hexdigest(), str(broken))
    backbone = RandomProjection()
    torch.save(backbone.state_dict(), tmp_path / "backbone.pt")
    spec = EmbedSpec(
        backbone_path=str(tmp_path / "backbone.pt"),
        items=(*items[:20], bad, *items[20:]),
        cache_dir=str(tmp_path / "cache"),
        input_size=28,
        input_channels=1,
        batch_size=16,
    )
    seen: list[tuple[str, float]] = []
    result = run_embedding(spec, progress=lambda s, f: seen.append((s, f)), loader=load_stand_in)
    assert result.failed_items == ("broken",)
    assert result.keys == tuple(item.key for item in items)
    assert result.embeddings.dtype == np.float16 and result.embeddings.shape == (40, DIM)
    # The PNGs decode to the very arrays they were written from, so the rows must match.
    expected = embed_arrays(backbone, digits.x[:40])
    np.testing.assert_allclose(
        result.embeddings.astype(np.float32), expected.astype(np.float32), atol=1e-3
    )
    assert seen[0] == ("cache", 0.0) and seen[-1] == ("done", 1.0)
    assert ("embed", 1.0) in seen
