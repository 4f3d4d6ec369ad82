"""Pairwise distances shared by the metric losses."""

from __future__ import annotations

from typing import Literal

from torch import Tensor
from torch.nn import functional as F

from reid_core.errors import ConfigError

Distance = Literal["euclidean", "cosine"]


def euclidean_dist(x: Tensor, y: Tensor) -> Tensor:
    """``[m, n]`` Euclidean distances, ``sqrt`` clamped at ``1e-12`` so gradients stay finite."""
    squared = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1).unsqueeze(0) - 2.0 * x @ y.t()
    return squared.clamp(min=1e-12).sqrt()


def cosine_dist(x: Tensor, y: Tensor) -> Tensor:
    """``[m, n]`` cosine distances ``1 - cos(x_i, y_j)`` in ``[0, 2]``."""
    return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()


def pairwise_distance(x: Tensor, y: Tensor, kind: Distance) -> Tensor:
    """Dispatch to :func:`euclidean_dist` or :func:`cosine_dist`."""
    if kind == "euclidean":
        return euclidean_dist(x, y)
    if kind == "cosine":
        return cosine_dist(x, y)
    raise ConfigError(f"distance={kind!r} must be 'euclidean' or 'cosine'")
