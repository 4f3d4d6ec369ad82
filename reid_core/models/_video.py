"""Video re-ID models TP, TA and TA_BT over a ResNet backbone, with a typed output."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor
from torch import nn

from reid_core.config import ModelConfig
from reid_core.errors import ConfigError
from reid_core.models._backbones import ResNetBackbone
from reid_core.models._backbones import build_backbone
from reid_core.models._heads import AttentionMode
from reid_core.models._heads import BNNeck
from reid_core.models._heads import TemporalAttentionPool
from reid_core.models._heads import TemporalAvgPool
from reid_core.models._heads import init_classifier
from reid_core.registry import Registry

__all__ = ["MODELS", "ReidOutput", "VideoReidModel", "build_model", "build_model_from_config"]


class ReidOutput(NamedTuple):
    """What every model returns, in train and in eval mode.

    Attributes:
        logits: ``[B, num_classes]`` identity scores (computed in eval mode too).
        features: ``[B, D]`` clip feature after temporal pooling, before the neck.
        bn_features: ``[B, D]`` the feature after BNNeck (TA_BT); ``features`` itself for
            models without a neck. This is the test (retrieval) feature and the input of the
            metric losses.
        attention_scores: ``[B, T]`` the temporal attention's raw scores (after its ReLU,
            before the softmax; the reference's ResNet50TA_BT2 ``a_vals``), the input of the
            attention loss; None for TP, which has no attention.
    """

    logits: Tensor
    features: Tensor
    bn_features: Tensor
    attention_scores: Tensor | None = None


class VideoReidModel(nn.Module):
    """Backbone per frame -> temporal pooling -> optional BNNeck -> linear classifier.

    Args:
        backbone: Frame feature extractor ``[N, 3, H, W] -> [N, C, h, w]``.
        temporal: Temporal pooling head ``(maps, B, T) -> ([B, C], raw scores [B, T] or None)``.
        num_classes: Number of training identities.
        bnneck: Add a BNNeck (bias frozen at zero) and a bias-free classifier (TA_BT); without
            it the classifier has a bias and ``bn_features`` is ``features`` (TP, TA).
        input_size: ``(H, W)`` the model is tied to (full-map attention), or None when any
            frame size works.

    Attributes:
        classifier: ``nn.Linear``; ``classifier.weight`` is ``[num_classes, feat_dim]`` (the
            OSM+CAA class prototypes).
        feat_dim: Dimension ``D`` of the clip features.

    Raises:
        ConfigError: ``num_classes < 1``.
    """

    def __init__(
        self,
        backbone: ResNetBackbone,
        temporal: nn.Module,
        *,
        num_classes: int,
        bnneck: bool,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes={num_classes} must be >= 1")
        self.backbone = backbone
        self.temporal = temporal
        self.feat_dim: int = backbone.out_channels
        self.num_classes = num_classes
        self.input_size = input_size
        self.neck: nn.Module = BNNeck(self.feat_dim) if bnneck else nn.Identity()
        self.classifier = nn.Linear(self.feat_dim, num_classes, bias=not bnneck)
        self.classifier.apply(init_classifier)

    def forward(self, x: Tensor) -> ReidOutput:
        """Run a batch of clips.

        Args:
            x: ``[B, T, C, H, W]`` clips, any ``T >= 1``.

        Returns:
            ``ReidOutput(logits, features, bn_features, attention_scores)``.

        Raises:
            ValueError: ``x`` is not 5-dimensional.
            ConfigError: the frame size differs from the one a full-map attention was built for.
        """
        if x.dim() != 5:
            raise ValueError(f"expected clips [B, T, C, H, W], got shape {tuple(x.shape)}")
        batch, seq_len, channels, height, width = x.shape
        if self.input_size is not None and (height, width) != self.input_size:
            raise ConfigError(
                f"frame size {(height, width)} differs from the input size {self.input_size} "
                "this full-map attention model was built for"
            )
        maps = self.backbone(x.reshape(batch * seq_len, channels, height, width))
        features, scores = self.temporal(maps, batch, seq_len)
        bn_features = self.neck(features)
        return ReidOutput(self.classifier(bn_features), features, bn_features, scores)

    @staticmethod
    def embedding(output: ReidOutput) -> Tensor:
        """The retrieval feature of an output: ``bn_features``."""
        return output.bn_features


ModelBuilder = Callable[..., VideoReidModel]
MODELS: Registry[ModelBuilder] = Registry("model")


def _attention_head(
    backbone: ResNetBackbone, attention: AttentionMode, input_size: tuple[int, int]
) -> tuple[TemporalAttentionPool, tuple[int, int] | None]:
    if attention == "full_map":
        feature_size = backbone.output_size(input_size)
        head = TemporalAttentionPool(
            backbone.out_channels, mode="full_map", feature_size=feature_size
        )
        return head, input_size
    return TemporalAttentionPool(backbone.out_channels, mode=attention), None


@MODELS.register("tp")
def _build_tp(
    *,
    num_classes: int,
    backbone: str = "resnet50",
    last_stride: int = 1,
    attention: AttentionMode = "full_map",
    pretrained: bool = True,
    input_size: tuple[int, int] = (224, 112),
) -> VideoReidModel:
    del attention, input_size  # temporal average pooling has no attention, any size works
    net = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
    return VideoReidModel(net, TemporalAvgPool(), num_classes=num_classes, bnneck=False)


def _build_attention_model(
    *,
    num_classes: int,
    backbone: str = "resnet50",
    last_stride: int = 1,
    attention: AttentionMode = "full_map",
    pretrained: bool = True,
    input_size: tuple[int, int] = (224, 112),
    bnneck: bool,
) -> VideoReidModel:
    net = build_backbone(backbone, last_stride=last_stride, pretrained=pretrained)
    head, tied_size = _attention_head(net, attention, input_size)
    return VideoReidModel(net, head, num_classes=num_classes, bnneck=bnneck, input_size=tied_size)


# TA: temporal attention, plain classifier; TA_BT: the same with the bag-of-tricks BNNeck.
MODELS.register("ta")(functools.partial(_build_attention_model, bnneck=False))
MODELS.register("ta_bt")(functools.partial(_build_attention_model, bnneck=True))


def build_model(
    arch: str,
    *,
    num_classes: int,
    backbone: str = "resnet50",
    last_stride: int = 1,
    attention: AttentionMode = "full_map",
    pretrained: bool = True,
    input_size: tuple[int, int] = (224, 112),
) -> VideoReidModel:
    """Build a registered video model.

    Args:
        arch: ``"tp"`` (temporal average pooling), ``"ta"`` (temporal attention) or
            ``"ta_bt"`` (temporal attention + BNNeck, the bag-of-tricks model).
        num_classes: Number of training identities (size of the classifier).
        backbone: A name in ``BACKBONES`` (resnet10/18/34/50/101).
        last_stride: Stride of the last ResNet stage, 1 or 2.
        attention: ``"full_map"`` (faithful, tied to ``input_size``) or ``"pooled"``
            (any input size); ignored by ``"tp"``.
        pretrained: ImageNet weights from the local torch hub cache (warns when absent).
        input_size: Frame ``(height, width)``; sizes the full-map attention kernel.

    Returns:
        The model; ``model(x[B, T, C, H, W])`` returns a :class:`ReidOutput`.

    Raises:
        UnknownNameError: unknown ``arch`` or ``backbone``.
        ConfigError: invalid ``num_classes``, ``last_stride``, ``attention`` or ``input_size``.

    Example:
        >>> import torch
        >>> model = build_model("ta_bt", num_classes=5, backbone="resnet10",
        ...                     pretrained=False, input_size=(32, 16)).eval()
        >>> model(torch.randn(2, 3, 3, 32, 16)).bn_features.shape
        torch.Size([2, 512])
    """
    builder = MODELS.get(arch)
    if len(input_size) != 2 or min(input_size) < 1:
        raise ConfigError(f"input_size={tuple(input_size)} must be (height, width) >= 1")
    return builder(
        num_classes=num_classes,
        backbone=backbone,
        last_stride=last_stride,
        attention=attention,
        pretrained=pretrained,
        input_size=(int(input_size[0]), int(input_size[1])),
    )


def build_model_from_config(
    cfg: ModelConfig, *, num_classes: int, input_size: tuple[int, int]
) -> VideoReidModel:
    """Build the model a :class:`~reid_core.config.ModelConfig` describes.

    Args:
        cfg: Architecture, backbone, last stride, attention mode, pretrained flag.
        num_classes: Number of training identities.
        input_size: Frame ``(height, width)``, usually ``(cfg.data.height, cfg.data.width)``.

    Returns:
        The model (see :func:`build_model`).
    """
    return build_model(
        cfg.arch,
        num_classes=num_classes,
        backbone=cfg.backbone,
        last_stride=cfg.last_stride,
        attention=cfg.attention,
        pretrained=cfg.pretrained,
        input_size=input_size,
    )
