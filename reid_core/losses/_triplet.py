"""Batch-hard triplet loss (Hermans et al.), Euclidean or cosine distance."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F

from reid_core.errors import ConfigError
from reid_core.losses._distances import Distance
from reid_core.losses._distances import pairwise_distance

__all__ = ["HardTriplets", "TripletLoss", "hard_example_mining"]


class HardTriplets(NamedTuple):
    """The hardest pair of each anchor in a batch.

    Attributes:
        dist_ap: ``[n]`` distance to the farthest same-id sample (the anchor itself when it
            has no other positive, at distance ~0).
        dist_an: ``[n]`` distance to the closest other-id sample (``inf`` when none).
        positive_idx: ``[n]`` batch index of that positive.
        negative_idx: ``[n]`` batch index of that negative (meaningless where not ``valid``).
        valid: ``[n]`` bool, the anchor has at least one negative.
    """

    dist_ap: Tensor
    dist_an: Tensor
    positive_idx: Tensor
    negative_idx: Tensor
    valid: Tensor


def hard_example_mining(dist: Tensor, labels: Tensor) -> HardTriplets:
    """Pick, for each row of a ``[n, n]`` distance matrix, the hardest positive and negative.

    Args:
        dist: Pairwise distances between the batch samples.
        labels: ``[n]`` identity labels.

    Returns:
        :class:`HardTriplets`.
    """
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    dist_ap, positive_idx = dist.masked_fill(~same, float("-inf")).max(dim=1)
    dist_an, negative_idx = dist.masked_fill(same, float("inf")).min(dim=1)
    return HardTriplets(dist_ap, dist_an, positive_idx, negative_idx, (~same).any(dim=1))


class TripletLoss(nn.Module):
    """Batch-hard triplet loss ``mean(max(0, d(a, p) - d(a, n) + margin))``.

    Anchors without any negative (a batch of one identity) are left out; with none left the
    loss is an exact zero that still belongs to the graph.

    Args:
        margin: The margin ``m >= 0``.
        distance: ``"cosine"`` (``1 - cos``, the reference's choice) or ``"euclidean"``.

    Raises:
        ConfigError: negative margin or unknown distance.
    """

    def __init__(self, margin: float = 0.3, distance: Distance = "cosine") -> None:
        super().__init__()
        if margin < 0:
            raise ConfigError(f"triplet margin={margin} must be >= 0")
        if distance not in ("cosine", "euclidean"):
            raise ConfigError(f"triplet distance={distance!r} must be 'cosine' or 'euclidean'")
        self.margin = margin
        self.distance: Distance = distance

    def mine(self, features: Tensor, labels: Tensor) -> HardTriplets:
        """The hardest positive and negative of every anchor of ``features[n, d]``."""
        return hard_example_mining(pairwise_distance(features, features, self.distance), labels)

    def forward(self, features: Tensor, labels: Tensor) -> Tensor:
        """Mean batch-hard triplet loss over the anchors that have a negative (0 if none).

        Masked rather than indexed, so that it never reads a value back from the device.
        """
        mined = self.mine(features, labels)
        gaps = F.relu(mined.dist_ap - mined.dist_an + self.margin)
        gaps = torch.where(mined.valid, gaps, torch.zeros_like(gaps))
        return gaps.sum() / mined.valid.sum().clamp_min(1)
