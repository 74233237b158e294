"""The model registry, MC dropout in the head, and checkpoints that carry their own spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from training.contracts import TrainConfig
from training.models import (
    MODELS,
    SPEC_KEYS,
    build_model,
    checkpoint_meta,
    load_checkpoint,
    save_checkpoint,
)


@pytest.mark.parametrize(
    ("size", "channels", "classes", "embed_dim"),
    [(28, 1, 10, 1600), (32, 3, 4, 64 * 6 * 6), (64, 1, 2, 64 * 14 * 14)],
)
def test_seed_cnn_adapts_to_any_input_size_channels_and_class_count(
    size: int, channels: int, classes: int, embed_dim: int
) -> None:
    model = build_model("seed_cnn", num_classes=classes, input_size=size, input_channels=channels)
    x = torch.randint(0, 256, (3, channels, size, size), dtype=torch.uint8)
    assert model(x).shape == (3, classes)
    assert model.embed(x).shape == (3, embed_dim)
    assert isinstance(model.dropout, torch.nn.Dropout) and model.dropout.p == 0.5


def test_seed_cnn_is_the_classic_mnist_network() -> None:
    model = build_model("seed_cnn", num_classes=10, input_size=28, input_channels=1)
    kinds = [type(m).__name__ for m in model.trunk]
    assert kinds == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten"]
    assert [m.out_channels for m in model.trunk if isinstance(m, torch.nn.Conv2d)] == [32, 64]


@pytest.mark.parametrize("size", [32, 128])
def test_resnet_small_handles_larger_rgb_images(size: int) -> None:
    model = build_model("resnet_small", num_classes=5, input_size=size, input_channels=3)
    model.eval()
    x = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    assert model(x).shape == (2, 5) and model.embed(x).shape == (2, 256)


def test_the_registry_refuses_unknown_architectures() -> None:
    assert set(MODELS) == {"seed_cnn", "resnet_small", "resnet18", "resnet50"}
    with pytest.raises(ValueError, match="unknown arch"):
        build_model("vit_huge", num_classes=2, input_size=28, input_channels=1)


def test_mc_dropout_samples_only_the_head_and_reproduces_nn_dropout() -> None:
    torch.manual_seed(0)
    model = build_model("seed_cnn", num_classes=10, input_size=28, input_channels=1).eval()
    emb = model.embed(torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8))
    masks = model.dropout_masks(20, seed=1)
    assert masks.shape == (20, 1600) and set(masks.unique().tolist()) == {0.0, 2.0}
    mc = model.mc_probabilities(emb, masks)
    assert mc.shape == (20, 4, 10)
    torch.testing.assert_close(mc.sum(-1), torch.ones(20, 4))
    # Sample 3 equals the head applied to the masked embedding, as nn.Dropout would compute.
    manual = torch.softmax(model.fc(emb * masks[3]), dim=-1)
    torch.testing.assert_close(mc[3], manual)
    torch.testing.assert_close(masks, model.dropout_masks(20, seed=1))


def test_a_checkpoint_restores_weights_spec_and_versions(tmp_path: Path) -> None:
    model = build_model(
        "seed_cnn", num_classes=3, input_size=20, input_channels=1, mean=[33.0], std=[77.0]
    ).eval()
    meta = checkpoint_meta(
        model,
        arch="seed_cnn",
        classes=("cat", "dog", "eel"),
        input_size=20,
        input_channels=1,
        dropout=0.5,
        metrics={"accuracy": 0.5},
    )
    path = tmp_path / "deep" / "model.pt"
    save_checkpoint(str(path), model, meta)
    loaded, got = load_checkpoint(str(path))
    x = torch.randint(0, 256, (2, 1, 20, 20), dtype=torch.uint8)
    torch.testing.assert_close(loaded(x), model(x))
    assert got["classes"] == ["cat", "dog", "eel"] and got["metrics"] == {"accuracy": 0.5}
    assert got["mean"] == [33.0] and got["std"] == [77.0]  # the model's own normalisation
    assert set(got["versions"]) == {"python", "torch", "numpy", "ray"}
    assert not list(path.parent.glob(".*tmp"))  # written atomically, no temp file left


def test_a_checkpoint_without_its_spec_is_refused(tmp_path: Path) -> None:
    model = build_model("seed_cnn", num_classes=2, input_size=28, input_channels=1)
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(str(tmp_path / "m.pt"), model, {"arch": "seed_cnn"})


def test_checkpoint_meta_reads_the_normalisation_off_the_model_and_stores_the_config_as_json(
    tmp_path: Path,
) -> None:
    model = build_model(
        "seed_cnn", num_classes=2, input_size=28, input_channels=3, mean=[1.0, 2.0, 3.0]
    )
    meta = checkpoint_meta(
        model,
        arch="seed_cnn",
        classes=("cat", "dog"),
        input_size=28,
        input_channels=3,
        dropout=0.25,
        metrics={"accuracy": 0.75},
        config=TrainConfig(lr=1e-3),
        seed=4,
    )
    assert meta["mean"] == [1.0, 2.0, 3.0] and meta["std"] == [127.5] * 3
    assert meta["classes"] == ["cat", "dog"] and meta["dropout"] == 0.25
    assert meta["config"]["lr"] == 1e-3 and meta["seed"] == 4
    json.dumps(meta)  # the worker copies the metrics into the database as JSON
    save_checkpoint(str(tmp_path / "m.pt"), model, meta)
    assert load_checkpoint(str(tmp_path / "m.pt"))[1]["config"] == meta["config"]


def test_checkpoint_meta_holds_exactly_what_a_checkpoint_needs_when_given_nothing_more() -> None:
    model = build_model("seed_cnn", num_classes=2, input_size=28, input_channels=1)
    meta = checkpoint_meta(
        model, arch="seed_cnn", classes=("a", "b"), input_size=28, input_channels=1, dropout=0.5
    )
    assert set(meta) == set(SPEC_KEYS)  # no metrics, config or seed stored as None
