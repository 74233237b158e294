"""ResNets in torchvision's layout, the layout checks, backbone files, and classifiers on them.

    .venv/bin/python -m pytest tests/training/test_backbones.py -q

Weights are written the way torchvision publishes them (`torch.save(model.state_dict(), p)`);
the key names and shapes are checked against torchvision's own, written out below.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from training.backbones import (
    IMAGENET_MEAN,
    Backbone,
    BackboneLayoutError,
    backbone_from_torchvision,
    build_resnet,
    detect_layout,
    is_backbone_file,
    load_backbone,
    load_torchvision_state,
    save_backbone,
)
from training.models import (
    BACKBONE_CLASSIFIER,
    build_model,
    checkpoint_meta,
    classifier_from_backbone,
    load_checkpoint,
    save_checkpoint,
)

# Names, shapes and sizes of torchvision's resnet18 / resnet50 (IMAGENET1K weights).
TORCHVISION_RESNET18 = {
    "conv1.weight": (64, 3, 7, 7),
    "bn1.running_mean": (64,),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer1.1.bn2.weight": (64,),
    "layer2.0.conv1.weight": (128, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.running_var": (128,),
    "layer3.1.conv2.weight": (256, 256, 3, 3),
    "layer4.0.downsample.0.weight": (512, 256, 1, 1),
    "layer4.1.bn2.bias": (512,),
    "fc.weight": (1000, 512),
    "fc.bias": (1000,),
}
TORCHVISION_RESNET50 = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer3.5.bn3.weight": (1024,),
    "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
    "layer4.2.bn3.running_var": (2048,),
    "fc.weight": (1000, 2048),
}
# (state_dict entries, parameters): torchvision's counts, num_batches_tracked included.
TORCHVISION_SIZES = {"resnet18": (122, 11_689_512), "resnet50": (320, 25_557_032)}
LAYOUTS = [("resnet18", 64, "imagenet"), ("resnet18", 16, "small"), ("resnet50", 8, "imagenet")]


def torchvision_file(tmp_path: Path, arch: str, width: int, stem: str, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    model = build_resnet(arch, width=width, stem=stem)
    with torch.no_grad():  # BatchNorm statistics that are not the defaults, so loading shows
        for name, buf in model.named_buffers():
            if "running" in name:
                buf.uniform_(0.5, 1.5)
    path = tmp_path / f"{arch}-{width}-{stem}.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.mark.parametrize(
    ("arch", "expected"), [("resnet18", TORCHVISION_RESNET18), ("resnet50", TORCHVISION_RESNET50)]
)
def test_full_width_resnets_name_and_shape_their_weights_as_torchvision_does(
    arch: str, expected: dict
) -> None:
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = build_resnet(arch)
    state = model.state_dict()
    assert {k: tuple(state[k].shape) for k in expected} == expected
    entries, params = TORCHVISION_SIZES[arch]
    assert len(state) == entries and sum(p.numel() for p in model.parameters()) == params


def test_width_and_stem_change_shapes_but_not_names() -> None:
    wide = build_resnet("resnet18").state_dict()
    slim = build_resnet("resnet18", width=16, stem="small").state_dict()
    assert list(slim) == list(wide)
    assert tuple(slim["conv1.weight"].shape) == (16, 3, 3, 3)
    assert tuple(slim["layer4.1.conv2.weight"].shape) == (128, 128, 3, 3)
    x = torch.randn(2, 3, 32, 32)
    assert build_resnet("resnet18", width=16, stem="small").eval().features(x).shape == (2, 128)
    assert build_resnet("resnet50", width=8, in_channels=1).eval().features(x[:, :1]).shape == (
        2,
        256,
    )


@pytest.mark.parametrize(("arch", "width", "stem"), LAYOUTS)
def test_a_torchvision_file_loads_back_weight_for_weight(
    tmp_path: Path, arch: str, width: int, stem: str
) -> None:
    path = torchvision_file(tmp_path, arch, width, stem)
    saved = torch.load(path, weights_only=True)
    torch.manual_seed(1)
    model = build_resnet(arch, width=width, stem=stem)
    assert load_torchvision_state(model, saved) == []  # nothing left out, the head included
    assert list(model.state_dict()) == list(saved)
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key
    assert detect_layout(saved) == (arch, width, stem)


def test_a_wrong_layout_is_refused_naming_the_keys_and_what_was_expected() -> None:
    state = build_resnet("resnet18", width=16, stem="small").state_dict()
    state["layer1.0.convA.weight"] = state.pop("layer1.0.conv1.weight")
    del state["layer2.1.bn1.bias"]
    state["conv1.weight"] = torch.zeros(16, 3, 7, 7)
    with pytest.raises(BackboneLayoutError) as caught:
        load_torchvision_state(build_resnet("resnet18", width=16, stem="small"), state)
    message = str(caught.value)
    assert "resnet18 (width 16, stem 'small'" in message
    assert "2 missing keys: layer1.0.conv1.weight, layer2.1.bn1.bias" in message
    assert "1 unexpected keys: layer1.0.convA.weight" in message
    assert "conv1.weight file (16, 3, 7, 7) vs model (16, 3, 3, 3)" in message


def test_a_resnet50_file_read_as_a_resnet18_is_refused_with_a_hint(tmp_path: Path) -> None:
    saved = torch.load(torchvision_file(tmp_path, "resnet50", 8, "imagenet"), weights_only=True)
    with pytest.raises(BackboneLayoutError, match="this looks like a resnet50 \\(width 8"):
        load_torchvision_state(build_resnet("resnet18", width=8), saved)


def test_an_unsupported_resnet_is_named_by_detect_layout() -> None:
    state = build_resnet("resnet18", width=4).state_dict()
    # Extra blocks up to torchvision's resnet34 depths, [3, 4, 6, 3] basic blocks.
    for stage, blocks in ((1, 3), (2, 4), (3, 6), (4, 3)):
        for i in range(2, blocks):
            state[f"layer{stage}.{i}.conv1.weight"] = torch.zeros(1)
    with pytest.raises(BackboneLayoutError, match="looks like a resnet34"):
        detect_layout(state)
    with pytest.raises(BackboneLayoutError, match="not a torchvision ResNet"):
        detect_layout({"weight": torch.zeros(3)})


def test_dataparallel_prefixes_and_checkpoint_wrappers_are_accepted() -> None:
    source = build_resnet("resnet18", width=8, stem="small")
    prefixed = {f"module.{k}": v for k, v in source.state_dict().items()}
    for wrapped in ({"state_dict": prefixed}, {"model": prefixed}, prefixed):
        model = build_resnet("resnet18", width=8, stem="small")
        load_torchvision_state(model, wrapped)
        assert torch.equal(model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
        assert detect_layout(wrapped) == ("resnet18", 8, "small")


def test_the_imagenet_head_is_optional_and_skipped_when_its_shape_differs() -> None:
    source = build_resnet("resnet18", width=8, num_classes=10).state_dict()
    model = build_resnet("resnet18", width=8)
    head = model.fc.weight.clone()
    assert load_torchvision_state(model, source) == ["fc.weight", "fc.bias"]
    assert torch.equal(model.fc.weight, head)
    assert torch.equal(model.conv1.weight, source["conv1.weight"])
    old_style = {k: v for k, v in source.items() if not k.startswith("fc.")}
    old_style = {k: v for k, v in old_style.items() if "num_batches_tracked" not in k}
    assert load_torchvision_state(build_resnet("resnet18", width=8), old_style) == [
        "fc.weight",
        "fc.bias",
    ]


def test_a_backbone_file_round_trip_gives_identical_features(tmp_path: Path) -> None:
    torch.manual_seed(0)
    resnet = build_resnet("resnet18", width=8, stem="small", num_classes=0)
    backbone = Backbone(resnet, mean=[120.0, 110.0, 100.0], std=[60.0, 61.0, 62.0]).eval()
    path = tmp_path / "b" / "backbone.pt"
    save_backbone(path, resnet, **backbone.info(), meta={"method": "simclr", "images": 12})
    loaded, info = load_backbone(path)
    x = torch.randint(0, 256, (3, 3, 24, 24), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), backbone(x), rtol=0, atol=0)
    assert not loaded.training and loaded.embed_dim == 64
    assert info["format"] == "labelloop-backbone-1" and "state_dict" not in info
    assert info["meta"] == {"method": "simclr", "images": 12} and info["stem"] == "small"
    assert is_backbone_file(path) and not list(path.parent.glob(".*tmp"))
    with pytest.raises(ValueError, match=r"Backbone\.info"):
        save_backbone(path, resnet, **{**backbone.info(), "width": 16}, meta={})


def test_a_one_channel_image_goes_through_a_three_channel_backbone_resized() -> None:
    resnet = build_resnet("resnet18", width=8, stem="small").eval()
    backbone = Backbone(resnet, mean=IMAGENET_MEAN, std=[50.0] * 3, input_size=32).eval()
    grey = torch.randint(0, 256, (2, 1, 20, 20), dtype=torch.uint8)
    rgb = grey.repeat(1, 3, 1, 1).float()
    resized = F.interpolate(rgb, size=(32, 32), mode="bilinear", antialias=False)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = resnet.features((resized - mean) / 50.0)
        torch.testing.assert_close(backbone(grey), expected)
        assert backbone(grey).shape == (2, 64)
        with pytest.raises(ValueError, match="takes 3 channels"):
            backbone(torch.zeros(1, 2, 32, 32))


def test_a_torchvision_file_becomes_a_project_backbone_with_imagenet_statistics(
    tmp_path: Path,
) -> None:
    pth = torchvision_file(tmp_path, "resnet18", 8, "imagenet")
    backbone = backbone_from_torchvision(pth, input_size=64)
    assert backbone.info()["mean"] == pytest.approx([123.675, 116.28, 103.53])
    assert backbone.info()["std"] == pytest.approx([58.395, 57.12, 57.375])
    assert not is_backbone_file(pth)
    save_backbone(tmp_path / "project.pt", backbone.resnet, **backbone.info(), meta={})
    loaded, info = load_backbone(tmp_path / "project.pt")
    x = torch.randint(0, 256, (2, 3, 40, 40), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), backbone(x), rtol=0, atol=0)
    assert (info["arch"], info["width"], info["input_size"]) == ("resnet18", 8, 64)


def test_resnet_archs_take_width_and_stem_and_keep_them_in_checkpoints(tmp_path: Path) -> None:
    model = build_model(
        "resnet50", num_classes=3, input_size=32, input_channels=1, width=4, stem="imagenet"
    ).eval()
    assert model.embed_dim == 128 and model.trunk.resnet.stem == "imagenet"
    meta = checkpoint_meta(
        model,
        arch="resnet50",
        classes=("a", "b", "c"),
        input_size=32,
        input_channels=1,
        dropout=0.5,
    )
    assert meta["arch_options"] == {"width": 4, "stem": "imagenet"}
    save_checkpoint(str(tmp_path / "m.pt"), model, meta)
    loaded, got = load_checkpoint(str(tmp_path / "m.pt"))
    x = torch.randint(0, 256, (2, 1, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)
    assert got["arch_options"] == {"width": 4, "stem": "imagenet"}
    with pytest.raises(ValueError, match="takes no option \\['width'\\]"):
        build_model("seed_cnn", num_classes=2, input_size=28, input_channels=1, width=8)


def test_a_classifier_on_a_backbone_embeds_with_it_and_round_trips_a_checkpoint(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    resnet = build_resnet("resnet18", width=8, stem="small")
    save_backbone(
        tmp_path / "bb.pt",
        resnet,
        **Backbone(resnet, mean=[100.0] * 3, std=[70.0] * 3, input_size=32).info(),
        meta={},
    )
    backbone, info = load_backbone(tmp_path / "bb.pt")
    weight, bias = torch.randn(3, 64), torch.randn(3)
    model = classifier_from_backbone(
        backbone, info, classes=("a", "b", "c"), head_weight=weight, head_bias=bias
    ).eval()
    grey = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(grey), backbone(grey), rtol=0, atol=0)
        torch.testing.assert_close(model(grey), backbone(grey) @ weight.T + bias)
    meta = checkpoint_meta(
        model,
        arch=BACKBONE_CLASSIFIER,
        classes=("a", "b", "c"),
        input_size=28,
        input_channels=1,
        dropout=0.0,
    )
    save_checkpoint(str(tmp_path / "clf.pt"), model, meta)
    loaded, got = load_checkpoint(str(tmp_path / "clf.pt"))
    with torch.no_grad():
        torch.testing.assert_close(loaded(grey), model(grey), rtol=0, atol=0)
    assert got["arch_options"]["input_size"] == 32 and got["arch_options"]["arch"] == "resnet18"
    # Every parameter trains (no idle ImageNet head), as DistributedDataParallel requires.
    loaded.train()(grey.float()).sum().backward()
    assert all(p.grad is not None for p in loaded.parameters())
    with pytest.raises(ValueError, match="head_weight is \\(2, 64\\)"):
        classifier_from_backbone(backbone, info, classes="abc", head_weight=torch.zeros(2, 64))
