"""ResNet backbones with a configurable last stride, ImageNet weights from the local hub cache only.

The backbone maps frames ``[N, 3, H, W]`` to feature maps ``[N, C, h, w]``: torchvision's ResNet
without its average pool and fully connected layer. Pretrained weights are read from
``torch.hub.get_dir()/checkpoints/<file name of the torchvision weights URL>``; nothing is ever
downloaded here. A missing file is refused (:class:`~reid_core.errors.PretrainedWeightsError`,
naming the file and how to provide it): random initialisation only when ``pretrained=False``.
"""

from __future__ import annotations

import logging
import math
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from torch import nn
from torchvision.models import ResNet18_Weights
from torchvision.models import ResNet34_Weights
from torchvision.models import ResNet50_Weights
from torchvision.models import ResNet101_Weights
from torchvision.models import WeightsEnum
from torchvision.models.resnet import BasicBlock
from torchvision.models.resnet import Bottleneck
from torchvision.models.resnet import ResNet

from reid_core.errors import CheckpointError
from reid_core.errors import ConfigError
from reid_core.errors import PretrainedWeightsError
from reid_core.registry import Registry

logger = logging.getLogger(__name__)

__all__ = [
    "BACKBONES",
    "ResNetBackbone",
    "build_backbone",
    "expected_weights_path",
    "pretrained_weights_path",
    "require_pretrained_weights",
]


@dataclass(frozen=True)
class _ResNetSpec:
    block: type[BasicBlock] | type[Bottleneck]
    layers: tuple[int, int, int, int]
    weights: type[WeightsEnum] | None


class ResNetBackbone(nn.Module):
    """A torchvision ResNet trunk (stem + layer1..layer4), no pooling, no classifier.

    Args:
        resnet: The torchvision ResNet to take the layers from (weights already loaded).
        name: Registered backbone name, e.g. ``"resnet50"``.
        last_stride: Stride of ``layer4`` (1 doubles the final map size, as in bag of tricks).

    Attributes:
        out_channels: Channels of the output feature map (512 or 2048).
        last_stride: The stride of the last stage.

    Raises:
        ConfigError: ``last_stride`` is not 1 or 2.
    """

    def __init__(self, resnet: ResNet, *, name: str, last_stride: int = 1) -> None:
        super().__init__()
        if last_stride not in (1, 2):
            raise ConfigError(f"last_stride={last_stride} must be 1 or 2")
        self.name = name
        self.last_stride = last_stride
        self.conv1 = resnet.conv1
        self.bn1 = resnet.bn1
        self.relu = resnet.relu
        self.maxpool = resnet.maxpool
        self.layer1 = resnet.layer1
        self.layer2 = resnet.layer2
        self.layer3 = resnet.layer3
        self.layer4 = resnet.layer4
        self.out_channels: int = resnet.fc.in_features
        for module in self.layer4[0].modules():
            if isinstance(module, nn.Conv2d) and module.stride == (2, 2):
                module.stride = (last_stride, last_stride)

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """Spatial size ``(h, w)`` of the feature map for frames of ``input_size = (H, W)``.

        Every stride-2 step of a ResNet (7x7 stem conv, 3x3 max pool, first 3x3/1x1 convs of
        a stage) maps a side ``s`` to ``ceil(s / 2)``.
        """
        strides = (2, 2, 2, 2, self.last_stride)
        sides = []
        for side in input_size:
            for stride in strides:
                side = math.ceil(side / stride)
            sides.append(side)
        return sides[0], sides[1]

    def forward(self, x: Tensor) -> Tensor:
        """``[N, 3, H, W]`` frames -> ``[N, out_channels, h, w]`` feature maps."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)


BACKBONES: Registry[Callable[..., ResNetBackbone]] = Registry("backbone")

_SPECS: dict[str, _ResNetSpec] = {
    "resnet10": _ResNetSpec(BasicBlock, (1, 1, 1, 1), None),
    "resnet18": _ResNetSpec(BasicBlock, (2, 2, 2, 2), ResNet18_Weights),
    "resnet34": _ResNetSpec(BasicBlock, (3, 4, 6, 3), ResNet34_Weights),
    "resnet50": _ResNetSpec(Bottleneck, (3, 4, 6, 3), ResNet50_Weights),
    "resnet101": _ResNetSpec(Bottleneck, (3, 4, 23, 3), ResNet101_Weights),
}


def _make_builder(name: str) -> Callable[..., ResNetBackbone]:
    def builder(*, last_stride: int = 1, pretrained: bool = True) -> ResNetBackbone:
        spec = _SPECS[name]
        resnet = ResNet(spec.block, list(spec.layers))
        if pretrained:
            _load_imagenet(resnet, name)
        return ResNetBackbone(resnet, name=name, last_stride=last_stride)

    builder.__name__ = name
    builder.__doc__ = f"Build a {name} backbone (see :func:`build_backbone`)."
    return builder


for _name in _SPECS:
    BACKBONES.register(_name)(_make_builder(_name))


def pretrained_weights_path(name: str) -> Path | None:
    """The cached ImageNet weights file for backbone ``name``, or None when none is cached.

    The classic ``IMAGENET1K_V1`` weights (those of ``pretrained=True``, used by the reference)
    are preferred; a cached newer file is used otherwise.

    Raises:
        UnknownNameError: ``name`` is not a registered backbone.
    """
    BACKBONES.get(name)
    weights = _SPECS[name].weights
    if weights is None:
        return None
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for entry in weights:
        path = checkpoints / Path(entry.url).name
        if path.is_file():
            return path
    return None


def expected_weights_path(name: str) -> Path | None:
    """Where the reference's ImageNet weights (``IMAGENET1K_V1``) of ``name`` are looked for;
    None when torchvision has no ImageNet weights for it (``resnet10``)."""
    BACKBONES.get(name)
    weights = _SPECS[name].weights
    if weights is None:
        return None
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(next(iter(weights)).url).name


def require_pretrained_weights(name: str) -> Path:
    """The cached ImageNet weights file of ``name``, or one line saying how to provide it.

    Raises:
        PretrainedWeightsError: ``name`` has no ImageNet weights, or no file is cached.
        UnknownNameError: ``name`` is not a registered backbone.
    """
    expected = expected_weights_path(name)
    if expected is None:
        raise PretrainedWeightsError(
            f"no ImageNet weights exist for backbone {name}; set pretrained: false "
            "(model.pretrained in a spec, --no-pretrained for train)"
        )
    path = pretrained_weights_path(name)
    if path is None:
        constructor = f"torchvision.models.{name}(weights='IMAGENET1K_V1')"
        raise PretrainedWeightsError(
            f"ImageNet weights for {name} not found: looked for {expected}; provide them by "
            f'running python -c "import torchvision; {constructor}" on a machine with network '
            f"access (or copying the file there; TORCH_HOME moves the cache), or set "
            "pretrained: false for random initialisation"
        )
    return path


def _load_imagenet(resnet: ResNet, name: str) -> None:
    path = require_pretrained_weights(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        resnet.load_state_dict(state)
    except (RuntimeError, OSError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(
            f"cannot load ImageNet weights for {name} from {path}: {first}"
        ) from exc
    logger.info("loaded ImageNet weights for %s from %s", name, path)


def build_backbone(name: str, *, last_stride: int = 1, pretrained: bool = True) -> ResNetBackbone:
    """Build a registered ResNet backbone.

    Args:
        name: One of ``BACKBONES.names()``: resnet10 (BasicBlock [1, 1, 1, 1], tests only),
            resnet18, resnet34, resnet50, resnet101.
        last_stride: Stride of the last stage, 1 (bag of tricks: 224x112 -> 14x7) or 2.
        pretrained: Load ImageNet weights from the local torch hub cache (refused when
            absent); False initialises randomly.

    Returns:
        The backbone module.

    Raises:
        UnknownNameError: ``name`` is not registered.
        ConfigError: ``last_stride`` is not 1 or 2.
        CheckpointError: a cached weights file exists but cannot be loaded.
        PretrainedWeightsError: ``pretrained`` and no weights file is cached.

    Example:
        >>> net = build_backbone("resnet18", pretrained=False)
        >>> net.out_channels, net.output_size((224, 112))
        (512, (14, 7))
    """
    return BACKBONES.get(name)(last_stride=last_stride, pretrained=pretrained)
