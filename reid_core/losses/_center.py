"""Center loss (Wen et al.): pull each feature towards a learnable center of its class."""

from __future__ import annotations

import torch
from torch import Tensor
from torch import nn

from reid_core.errors import ConfigError

__all__ = ["CenterLoss"]


class CenterLoss(nn.Module):
    """``mean_i ||x_i - c_{y_i}||^2`` with one learnable center per class.

    Size it with the real number of training identities (the reference hard-coded 751).

    Args:
        num_classes: Number of classes (centers).
        feat_dim: Feature dimension.

    Attributes:
        centers: ``nn.Parameter`` of shape ``[num_classes, feat_dim]``, ``N(0, 1)`` init.

    Raises:
        ConfigError: ``num_classes`` or ``feat_dim`` below 1.
    """

    def __init__(self, num_classes: int, feat_dim: int) -> None:
        super().__init__()
        if num_classes < 1 or feat_dim < 1:
            raise ConfigError(f"num_classes={num_classes} and feat_dim={feat_dim} must be >= 1")
        self.num_classes = num_classes
        self.feat_dim = feat_dim
        self.centers = nn.Parameter(torch.randn(num_classes, feat_dim))

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Mean squared distance of ``features[B, feat_dim]`` to their class centers."""
        if features.shape[-1] != self.feat_dim:
            raise ValueError(f"features have dim {features.shape[-1]}, expected {self.feat_dim}")
        diff = features - self.centers[labels]
        return diff.pow(2).sum(dim=1).clamp(min=1e-12, max=1e12).mean()
