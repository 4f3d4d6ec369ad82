"""Video re-ID models: TP, TA and TA_BT (temporal attention + BNNeck) on ResNet backbones.

Every model maps clips ``x[B, T, C, H, W]`` to a :class:`ReidOutput` ``(logits, features,
bn_features, attention_scores)``; the retrieval feature is ``bn_features``
(:meth:`VideoReidModel.embedding`); the raw attention scores feed the attention loss (the
reference's ResNet50TA_BT2 is TA_BT with this output: one network, no separate arch).
"""

from __future__ import annotations

from reid_core.models._backbones import BACKBONES
from reid_core.models._backbones import ResNetBackbone
from reid_core.models._backbones import build_backbone
from reid_core.models._backbones import expected_weights_path
from reid_core.models._backbones import pretrained_weights_path
from reid_core.models._backbones import require_pretrained_weights
from reid_core.models._heads import BNNeck
from reid_core.models._heads import TemporalAttentionPool
from reid_core.models._heads import TemporalAvgPool
from reid_core.models._video import MODELS
from reid_core.models._video import ReidOutput
from reid_core.models._video import VideoReidModel
from reid_core.models._video import build_model
from reid_core.models._video import build_model_from_config

__all__ = [
    "BACKBONES",
    "MODELS",
    "BNNeck",
    "ReidOutput",
    "ResNetBackbone",
    "TemporalAttentionPool",
    "TemporalAvgPool",
    "VideoReidModel",
    "build_backbone",
    "build_model",
    "build_model_from_config",
    "expected_weights_path",
    "pretrained_weights_path",
    "require_pretrained_weights",
]
