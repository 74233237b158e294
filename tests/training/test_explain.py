"""Class-activation maps and the shortcut check (training/explain.py), on real MNIST digits and
models really trained for a few steps.

    .venv/bin/python -m pytest tests/training/test_explain.py -q -p no:django

The planted shortcut: digits of every kind, labelled "marked" or "plain" at random, with a
bright square in the top-left corner of every "marked" one. The square is all that tells the
classes apart, so a model that fits them reads it; its maps must say so, and the check must
flag it. A model trained on the digits' own classes is not flagged.
"""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from training.contracts import TrainConfig
from training.data import letterbox
from training.explain import (
    SHORTCUT_THRESHOLD,
    border_share,
    class_activation_maps,
    content_box,
    crop_to_content,
    overlay_png,
    shortcut_check,
    target_layer,
)
from training.models import build_model
from training.train import fit

SQUARE = 6  # px, the planted mark's side, in the corner of a 28 px digit
N_TRAIN, N_CHECK = 300, 100
CONFIG = replace(TrainConfig(), max_steps=150, min_steps=0, refit=False, use_gpu=False)


@pytest.fixture(scope="module")
def planted(digits):
    """(model, x_check, y_check): a seed_cnn trained where the corner square gives the class."""
    rng = np.random.default_rng(0)
    x = digits.x[: N_TRAIN + N_CHECK].copy()
    y = rng.integers(0, 2, len(x))  # 0 plain, 1 marked; independent of the digit
    x[y == 1, :, :SQUARE, :SQUARE] = 255
    model, metrics = fit(x[:N_TRAIN], y[:N_TRAIN], classes=("plain", "marked"), config=CONFIG)
    assert metrics["accuracy"] >= 0.95  # it did learn the classes: the square is the way
    return model, x[N_TRAIN:], y[N_TRAIN:]


@pytest.fixture(scope="module")
def clean(digits):
    """(model, x_check, y_check): a seed_cnn trained on the digits' own ten classes."""
    x, y = digits.x[: N_TRAIN + N_CHECK], digits.y[: N_TRAIN + N_CHECK]
    classes = tuple(str(d) for d in range(10))
    model, _ = fit(x[:N_TRAIN], y[:N_TRAIN], classes=classes, config=CONFIG)
    return model, x[N_TRAIN:], y[N_TRAIN:]


def test_the_map_of_a_model_that_learned_a_corner_square_sits_on_the_square(planted):
    model, x, y = planted
    explained = class_activation_maps(model, x[y == 1])
    assert (explained.targets == 1).mean() >= 0.95  # explained as "marked", as predicted
    corner = SQUARE + 2  # the square and the 2 px the training shifts can move it by
    shares = [m[:corner, :corner].sum() / m.sum() for m in explained.maps]
    # The corner box is 8% of the image; most of the evidence is in it.
    assert np.median(shares) > 0.5


def test_the_shortcut_check_flags_the_class_a_corner_square_gives_away(planted):
    model, x, y = planted
    report = shortcut_check(model, x, y, ["plain", "marked"])
    assert report["flagged"] == ["marked"]
    marked = report["per_class"]["marked"]
    assert marked["flagged"] and marked["border_share"] > SHORTCUT_THRESHOLD
    assert marked["images"] == 8 and report["threshold"] == SHORTCUT_THRESHOLD


def test_the_shortcut_check_does_not_flag_a_model_of_clean_digits(clean):
    model, x, y = clean
    report = shortcut_check(model, x, y, [str(d) for d in range(10)])
    assert report["flagged"] == []
    assert len(report["per_class"]) == 10
    assert report["max_border_share"] < SHORTCUT_THRESHOLD


def test_a_map_explains_the_class_it_is_asked_for(clean):
    model, x, _ = clean
    predicted = class_activation_maps(model, x[:4])
    other = (predicted.targets + 1) % 10
    asked = class_activation_maps(model, x[:4], targets=other)
    assert list(asked.targets) == list(other)
    assert asked.maps.shape == (4, 28, 28) and asked.maps.min() >= 0 and asked.maps.max() <= 1
    assert not np.allclose(asked.maps, predicted.maps)


@pytest.mark.parametrize(
    ("arch", "size", "channels", "options", "layer"),
    [
        ("seed_cnn", 28, 1, {}, "ReLU"),
        ("resnet_small", 32, 3, {}, "BasicBlock"),
        ("resnet18", 32, 3, {"width": 8}, "Sequential"),
        ("resnet50", 64, 3, {"width": 8}, "Sequential"),
    ],
)
def test_every_architecture_has_a_map_at_its_input_side(arch, size, channels, options, layer):
    model = build_model(arch, num_classes=3, input_size=size, input_channels=channels, **options)
    assert type(target_layer(model)).__name__ == layer
    x = np.random.default_rng(0).integers(0, 256, (3, channels, size, size), dtype=np.uint8)
    explained = class_activation_maps(model, x)
    assert explained.maps.shape == (3, size, size)
    assert explained.probabilities.shape == (3, 3)
    assert np.isfinite(explained.maps).all() and explained.maps.max() <= 1


def test_the_content_box_is_where_the_letterbox_put_the_image():
    halves = np.zeros((30, 90), np.uint8)
    halves[:, 45:] = 255  # black | white: the letterbox pads with the edges' median, 127
    boxed = np.asarray(letterbox(Image.fromarray(halves), 28))
    left, top, right, bottom = content_box(90, 30, 28)
    assert (right - left, bottom - top) == (28, 9)
    inside = np.zeros_like(boxed, dtype=bool)
    inside[top:bottom, left:right] = True
    assert (boxed[~inside] == 127).all()
    assert boxed[top, left] == 0 and boxed[bottom - 1, right - 1] == 255
    assert crop_to_content(np.zeros((28, 28), np.float32), 90, 30).shape == (9, 28)
    assert content_box(28, 28, 28) == (0, 0, 28, 28)


def test_border_share_counts_the_outer_band():
    cam = np.zeros((16, 16))
    cam[0, 0] = 1.0
    assert border_share(cam) == 1.0
    cam[8, 8] = 3.0
    assert border_share(cam) == 0.25
    assert border_share(np.zeros((16, 16))) == 0.0


def test_the_overlay_is_transparent_where_the_map_is_empty():
    cam = np.zeros((10, 20), np.float32)
    cam[2:4, 5:9] = 1.0
    png = Image.open(io.BytesIO(overlay_png(cam)))
    assert png.mode == "RGBA" and png.size == (20, 10)
    alpha = np.asarray(png)[..., 3]
    assert (alpha[cam == 0] == 0).all() and (alpha[cam == 1] > 100).all()
