"""Online soft mining with class-aware attention (OSM + CAA, Wang et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor
from torch import nn
from torch.nn import functional as F

from reid_core.errors import ConfigError
from reid_core.losses._distances import euclidean_dist

__all__ = ["OSMCAALoss"]


def _weighted_mean(values: Tensor, weights: Tensor) -> Tensor:
    """``sum(w * v) / sum(w)``, zero when the weights sum to zero (no pairs): never NaN."""
    total = weights.sum()
    return (weights * values).sum() / total.clamp(min=torch.finfo(total.dtype).tiny)


class OSMCAALoss(nn.Module):
    """OSM + CAA on L2-normalised features ``x`` and prototypes ``p``.

    With ``d_ij = ||x_i - x_j||``:

    - positive pairs (same id, ``i != j``): ``s_ij = exp(-d_ij^2 / sigma^2)``;
    - negative pairs: ``s_ij = max(0, alpha - d_ij)``;
    - class attention ``a_i = softmax_c(x_i . p_c)[y_i]``, pair weight
      ``w_ij = s_ij * min(a_i, a_j)``;
    - ``L_P = 1/2 sum_pos(w d^2) / sum_pos(w)``,
      ``L_N = 1/2 sum_neg(w max(0, alpha - d)^2) / sum_neg(w)``;
    - loss ``(1 - l) L_P + l L_N``.

    A batch without positive (or negative) pairs, or whose pair weights are all zero, gives
    ``L_P = 0`` (or ``L_N = 0``) instead of the reference's division by zero. The loss is
    computed in float32 whatever the input precision.

    Args:
        alpha: Negative margin (> 0).
        l: Trade-off between positive and negative terms, in ``[0, 1]``.
        sigma: Width of the positive weighting kernel (> 0).

    Raises:
        ConfigError: a parameter outside its range.
    """

    def __init__(self, alpha: float = 1.2, l: float = 0.5, sigma: float = 0.8) -> None:  # noqa: E741
        super().__init__()
        if alpha <= 0 or sigma <= 0 or not 0.0 <= l <= 1.0:
            raise ConfigError(
                f"OSM parameters alpha={alpha}, sigma={sigma} must be > 0 and l={l} in [0, 1]"
            )
        self.alpha = alpha
        self.l = l
        self.sigma = sigma

    def forward(self, features: Tensor, labels: Tensor, prototypes: Tensor) -> Tensor:
        """The OSM + CAA loss of a batch.

        Args:
            features: ``[n, d]`` features (normalised here).
            labels: ``[n]`` class indices into ``prototypes``.
            prototypes: ``[num_classes, d]`` class prototypes (normalised here): the
                classifier weight or the center-loss centers.

        Returns:
            Scalar loss.

        Raises:
            ValueError: the feature and prototype dimensions differ.
        """
        if prototypes.dim() != 2 or prototypes.shape[1] != features.shape[1]:
            raise ValueError(
                f"prototypes must be [num_classes, {features.shape[1]}], "
                f"got {tuple(prototypes.shape)}"
            )
        x = F.normalize(features.float(), dim=1)
        protos = F.normalize(prototypes.float(), dim=1)
        n = x.shape[0]
        dist = euclidean_dist(x, x)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(n, dtype=torch.bool, device=x.device)
        pos = same & ~eye
        neg = ~same
        attention = F.softmax(x @ protos.t(), dim=1).gather(1, labels.unsqueeze(1)).squeeze(1)
        pair_attention = torch.minimum(attention.unsqueeze(0), attention.unsqueeze(1))
        hinge = F.relu(self.alpha - dist)
        pos_weights = torch.exp(-dist.pow(2) / self.sigma**2) * pair_attention * pos
        neg_weights = hinge * pair_attention * neg
        loss_pos = 0.5 * _weighted_mean(dist.pow(2), pos_weights)
        loss_neg = 0.5 * _weighted_mean(hinge.pow(2), neg_weights)
        return (1.0 - self.l) * loss_pos + self.l * loss_neg
