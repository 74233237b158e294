"""Self-supervised pretraining (SimCLR) of a backbone: the loop on arrays and the Ray job.

    .venv/bin/python -m pytest tests/training/test_pretrain.py -p no:django -q

Real MNIST digits (the conftest's `digits` and `store`), a tiny conv net standing in for the
project's ResNet (`SmallConv`: the same `.features(x) -> (N, D)` interface), real files, and
the session's local Ray for `run_pretrain`.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import ray.cloudpickle
import torch
import torch.nn.functional as F
from torch import nn

from training.contracts import ImageRef, PretrainSpec
from training.pretrain import run_pretrain
from training.ssl import make_view, nt_xent, pretrain_arrays

POOL = 512  # digits pretrained on: 8 full batches of 64

# The stand-in backbone and save function below travel to the Ray task by value: Ray's workers
# cannot import a test module by name (pytest puts tests/training on the driver's path only).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


class SmallConv(nn.Module):
    """Three conv-BN-ReLU stages and a global average pool: a ResNet's shape, in miniature."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        layers, c_in = [], channels
        for i, c_out in enumerate((width, 2 * width, 4 * width)):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)]
            layers += [nn.ReLU(inplace=True)]
            c_in = c_out
        self.body = nn.Sequential(*layers)
        self.feature_dim = 4 * width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))


def small_conv(spec: PretrainSpec) -> nn.Module:
    return SmallConv(spec.input_channels, spec.width)


def save_small(path: str, backbone: nn.Module, **fields: object) -> None:
    """The backbone file's layout ("labelloop-backbone-1"), written as training.backbones does."""
    torch.save(
        {"format": "labelloop-backbone-1", **fields, "state_dict": backbone.state_dict()}, path
    )


def spec_for(tmp_path: Path, **overrides: object) -> PretrainSpec:
    base = dict(
        items=(),
        cache_dir=str(tmp_path / "cache"),
        input_size=28,
        input_channels=1,
        backbone_path=str(tmp_path / "backbone.pt"),
        state_path=str(tmp_path / "state.pt"),
        width=8,
        epochs=1,
        batch_size=64,
        lr=3e-3,
        flip=False,  # digits have a side
        num_threads=1,
    )
    return PretrainSpec(**(base | overrides))


def knn_accuracy(backbone: nn.Module, mean: float, std: float, digits, k: int = 5) -> float:
    """k-NN (cosine) accuracy on 200 held-out digits, the pool's labels as the references."""
    backbone.eval()
    with torch.no_grad():

        def embed(x: np.ndarray) -> torch.Tensor:
            return F.normalize(backbone.features((torch.as_tensor(x).float() - mean) / std), dim=1)

        ref, query = embed(digits.x[:POOL]), embed(digits.x[4000:4200])
    nearest = (query @ ref.T).topk(k, dim=1).indices
    votes = torch.as_tensor(digits.y[:POOL])[nearest]
    return float((torch.mode(votes, dim=1).values.numpy() == digits.y[4000:4200]).mean())


def test_views_differ_and_positive_pairs_score_lower_than_random_pairs(digits):
    gen = torch.Generator().manual_seed(0)
    x = torch.as_tensor(digits.x[:8])
    a, b = make_view(x, gen, flip=False), make_view(x, gen, flip=False)
    assert a.shape == (8, 1, 28, 28) and a.min() >= 0 and a.max() <= 1
    assert not torch.allclose(a, b)
    rgb = torch.randint(0, 256, (8, 3, 16, 16), dtype=torch.uint8, generator=gen)
    assert make_view(rgb, gen, flip=True).shape == (8, 3, 16, 16)
    z = torch.randn(16, 32, generator=gen)
    assert nt_xent(z, z + 0.01, 0.2) < nt_xent(z, torch.randn(16, 32, generator=gen), 0.2)


def test_loss_goes_down_over_epochs(digits, tmp_path):
    spec = spec_for(tmp_path, epochs=4, state_path="")
    seen: list[tuple[str, float]] = []
    _, metrics = pretrain_arrays(
        digits.x[:POOL], spec, make_backbone=small_conv, progress=lambda s, f: seen.append((s, f))
    )
    # Progress: "pretrain" from 0 to 1, never backwards (the first and last always posted).
    assert {s for s, _ in seen} == {"pretrain"} and seen[0][1] < 0.01 and seen[-1][1] == 1.0
    assert [f for _, f in seen] == sorted(f for _, f in seen)
    curve = metrics["loss_curve"]
    assert len(curve) == 4 and metrics["stopped"] == "epochs" and metrics["steps"] == 4 * 8
    assert curve == sorted(curve, reverse=True), curve
    assert curve[-1] < curve[0] - 0.3, curve


def test_pretrained_features_beat_random_init_on_knn(digits, tmp_path):
    spec = spec_for(tmp_path, width=16, epochs=10, state_path="")
    torch.manual_seed(spec.seed)
    untrained = small_conv(spec)
    pool = digits.x[:POOL].astype(np.float64)
    before = knn_accuracy(untrained, pool.mean(), pool.std(), digits)
    backbone, metrics = pretrain_arrays(digits.x[:POOL], spec, make_backbone=small_conv)
    after = knn_accuracy(backbone, metrics["mean"][0], metrics["std"][0], digits)
    # Seen here: 0.46 at random init, 0.585 after 10 epochs.
    assert after > before + 0.05, (before, after)


def test_the_time_budget_stops_pretraining(digits, tmp_path):
    spec = spec_for(tmp_path, epochs=1000, minutes=0.002)  # 0.12 s of training
    _, metrics = pretrain_arrays(digits.x[:POOL], spec, make_backbone=small_conv)
    assert metrics["stopped"] == "budget"
    assert metrics["epochs_run"] < 1000 and metrics["steps"] < 1000 * 8


def test_should_stop_cancels_and_the_state_file_stays_whole(digits, tmp_path):
    calls = []

    def should_stop() -> bool:
        calls.append(1)
        return len(calls) > 12  # 12 steps: the first epoch (8) and 4 of the second

    spec = spec_for(tmp_path, epochs=3)
    _, metrics = pretrain_arrays(
        digits.x[:POOL], spec, make_backbone=small_conv, should_stop=should_stop
    )
    assert metrics["stopped"] == "cancelled"
    assert metrics["steps"] == 12 and metrics["epochs_run"] == 1
    state = torch.load(spec.state_path, weights_only=True)
    assert state["epoch"] == 1 and state["step"] == 8 and len(state["loss_curve"]) == 1
    assert not Path(spec.backbone_path).exists()


def test_a_longer_run_resumes_and_a_changed_spec_does_not(digits, tmp_path):
    x = digits.x[:POOL]
    _, first = pretrain_arrays(x, spec_for(tmp_path, epochs=1), make_backbone=small_conv)
    assert first["resumed_from_epoch"] == 0 and first["epochs_run"] == 1
    _, second = pretrain_arrays(x, spec_for(tmp_path, epochs=2), make_backbone=small_conv)
    assert second["resumed_from_epoch"] == 1 and second["epochs_run"] == 2
    assert len(second["loss_curve"]) == 2 and second["loss_curve"][0] == first["loss_curve"][0]
    assert second["steps"] == 16
    changed = spec_for(tmp_path, epochs=2, lr=1e-3)
    _, third = pretrain_arrays(x, changed, make_backbone=small_conv)
    assert third["resumed_from_epoch"] == 0 and third["epochs_run"] == 2
    _, other_images = pretrain_arrays(x[::-1].copy(), changed, make_backbone=small_conv)
    assert other_images["resumed_from_epoch"] == 0


def test_bad_arrays_are_refused_with_the_fix(digits, tmp_path):
    with pytest.raises(ValueError, match="input_channels=3"):
        pretrain_arrays(
            digits.x[:64], spec_for(tmp_path, input_channels=3), make_backbone=small_conv
        )
    with pytest.raises(ValueError, match="uint8"):
        pretrain_arrays(
            digits.x[:64].astype(np.float32), spec_for(tmp_path), make_backbone=small_conv
        )


def test_run_pretrain_on_ray_writes_a_loadable_backbone_and_reports_progress(
    ray_local, store, tmp_path
):
    spec = spec_for(tmp_path, items=store.items[:256], cache_dir=store.cache_dir, epochs=2)
    seen = []
    result = run_pretrain(
        spec, progress=lambda s, f: seen.append((s, f)), make_backbone=small_conv, save=save_small
    )
    assert result.backbone_path == spec.backbone_path and result.failed_items == ()
    m = result.metrics
    assert (m["stopped"], m["epochs_run"], m["steps"], m["images"]) == ("epochs", 2, 8, 256)
    assert len(m["loss_curve"]) == 2 and m["images_per_second"] > 0 and m["device"] == "cpu"
    saved = torch.load(spec.backbone_path, weights_only=True)
    assert saved["format"] == "labelloop-backbone-1" and saved["input_size"] == 28
    assert saved["meta"]["images"] == 256 and len(saved["mean"]) == 1
    fresh = small_conv(spec)
    fresh.load_state_dict(saved["state_dict"])
    # The relay samples the task's board twice a second: a short pretraining may pass between
    # two reads, so "pretrain" itself need not be seen here (the loop's own progress is).
    stages = [s for s, _ in seen]
    assert stages[0] == "cache" and stages[-1] == "done"
    fractions = [f for s, f in seen if s == "pretrain"]
    assert fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)


def test_cancelling_run_pretrain_writes_no_backbone(ray_local, store, tmp_path):
    spec = spec_for(tmp_path, items=store.items[:256], cache_dir=store.cache_dir, epochs=500)
    result = run_pretrain(spec, should_stop=lambda: True, make_backbone=small_conv, save=save_small)
    assert result.metrics["stopped"] == "cancelled" and result.backbone_path == ""
    assert result.metrics["epochs_run"] < 500
    assert not Path(spec.backbone_path).exists()
    if Path(spec.state_path).exists():  # whole epochs only, never half a file
        state = torch.load(spec.state_path, weights_only=True)
        assert state["epoch"] == result.metrics["epochs_run"]


def test_too_few_readable_images_is_a_clear_error(ray_local, store, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    junk = tuple(ImageRef(f"junk-{i}", f"{i:064x}", str(broken)) for i in range(5))
    spec = spec_for(tmp_path, items=(*store.items[:15], *junk), cache_dir=store.cache_dir)
    with pytest.raises(ValueError, match="at least 16 decodable images, the pool has 15"):
        run_pretrain(spec, make_backbone=small_conv, save=save_small)
    with pytest.raises(ValueError, match="arch"):
        run_pretrain(dataclasses.replace(spec, arch="vgg"), make_backbone=small_conv)
