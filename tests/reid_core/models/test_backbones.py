"""Backbones: last stride, output size, ImageNet weights from the local hub cache only."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torchvision.models import ResNet18_Weights
from torchvision.models.resnet import BasicBlock
from torchvision.models.resnet import ResNet

from reid_core.errors import CheckpointError
from reid_core.errors import ConfigError
from reid_core.errors import PretrainedWeightsError
from reid_core.errors import UnknownNameError
from reid_core.models import BACKBONES
from reid_core.models import build_backbone
from reid_core.models import pretrained_weights_path


@pytest.fixture()
def hub_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty torch hub directory for the duration of a test."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


def test_registry_lists_the_resnets() -> None:
    # Other packages may register more (the search bench's narrow resnet10_w32).
    library = ["resnet10", "resnet101", "resnet18", "resnet34", "resnet50"]
    assert [name for name in BACKBONES.names() if name in library] == library


@pytest.mark.parametrize(
    ("size", "last_stride"), [((32, 16), 1), ((64, 32), 1), ((33, 17), 1), ((64, 32), 2)]
)
def test_output_size_matches_the_real_feature_map(size: tuple[int, int], last_stride: int) -> None:
    net = build_backbone("resnet10", last_stride=last_stride, pretrained=False).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, *size))
    assert tuple(out.shape[2:]) == net.output_size(size)
    assert out.shape[1] == net.out_channels == 512


def test_resnet50_last_stride_one_gives_14x7_at_224x112() -> None:
    net = build_backbone("resnet50", pretrained=False)
    assert net.out_channels == 2048
    assert net.output_size((224, 112)) == (14, 7)
    assert build_backbone("resnet50", last_stride=2, pretrained=False).output_size((224, 112)) == (
        7,
        4,
    )


def test_last_stride_other_than_one_or_two_is_refused() -> None:
    with pytest.raises(ConfigError, match="last_stride=3"):
        build_backbone("resnet10", last_stride=3, pretrained=False)


def test_unknown_backbone_names_the_known_ones() -> None:
    with pytest.raises(UnknownNameError, match="resnet50"):
        build_backbone("resnet5", pretrained=False)


def test_missing_hub_cache_is_refused_naming_the_file_and_the_fix(hub_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent fallback to random init with a warning
        with pytest.raises(PretrainedWeightsError) as info:
            build_backbone("resnet18", pretrained=True)
    message = str(info.value)
    assert "\n" not in message
    assert str(hub_dir / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "weights='IMAGENET1K_V1'" in message and "pretrained: false" in message


def test_resnet10_has_no_imagenet_weights_and_is_refused(hub_dir: Path) -> None:
    with pytest.raises(PretrainedWeightsError, match="no ImageNet weights exist for backbone"):
        build_backbone("resnet10", pretrained=True)


def test_random_init_only_when_pretrained_is_false(hub_dir: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = build_backbone("resnet18", pretrained=False)
    assert net.out_channels == 512


def test_cached_weights_are_loaded(hub_dir: Path) -> None:
    reference = ResNet(BasicBlock, [2, 2, 2, 2])
    cached = hub_dir / "checkpoints" / Path(ResNet18_Weights.IMAGENET1K_V1.url).name
    cached.parent.mkdir()
    torch.save(reference.state_dict(), cached)
    assert pretrained_weights_path("resnet18") == cached
    net = build_backbone("resnet18", pretrained=True)
    assert torch.equal(net.conv1.weight, reference.conv1.weight)
    assert torch.equal(net.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_corrupt_cached_weights_raise_checkpoint_error(hub_dir: Path) -> None:
    cached = hub_dir / "checkpoints" / "resnet18-f37072fd.pth"
    cached.parent.mkdir()
    cached.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"resnet18-f37072fd\.pth"):
        build_backbone("resnet18", pretrained=True)
