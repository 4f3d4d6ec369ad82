"""Cross-entropy with label smoothing (Szegedy et al.), as in bag of tricks."""

from __future__ import annotations

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F

from reid_core.errors import ConfigError

__all__ = ["CrossEntropyLabelSmooth"]


class CrossEntropyLabelSmooth(nn.Module):
    """Cross-entropy against ``(1 - epsilon) * one_hot(y) + epsilon / num_classes``.

    Args:
        num_classes: Number of classes ``K``.
        epsilon: Smoothing in ``[0, 1)``; 0 gives the plain cross-entropy.

    Raises:
        ConfigError: ``num_classes < 1`` or ``epsilon`` outside ``[0, 1)``.

    Example:
        >>> loss = CrossEntropyLabelSmooth(3, epsilon=0.1)
        >>> round(float(loss(torch.zeros(1, 3), torch.tensor([0]))), 4)  # log(3)
        1.0986
    """

    def __init__(self, num_classes: int, epsilon: float = 0.1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes={num_classes} must be >= 1")
        if not 0.0 <= epsilon < 1.0:
            raise ConfigError(f"label smoothing epsilon={epsilon} must be in [0, 1)")
        self.num_classes = num_classes
        self.epsilon = epsilon

    def forward(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Mean smoothed cross-entropy of ``logits[B, K]`` against integer ``labels[B]``."""
        if logits.shape[-1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[-1]} classes, expected {self.num_classes}")
        log_probs = F.log_softmax(logits, dim=1)
        targets = torch.zeros_like(log_probs).scatter_(1, labels.unsqueeze(1), 1.0)
        targets = (1.0 - self.epsilon) * targets + self.epsilon / self.num_classes
        return (-targets * log_probs).sum(dim=1).mean()
