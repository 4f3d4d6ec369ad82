"""Temporal pooling heads, the BNNeck and the bag-of-tricks weight initialisers."""

from __future__ import annotations

from typing import Literal

from torch import Tensor
from torch import nn
from torch.nn import functional as F

from reid_core.errors import ConfigError

__all__ = [
    "BNNeck",
    "TemporalAttentionPool",
    "TemporalAvgPool",
    "init_classifier",
    "init_kaiming",
]

AttentionMode = Literal["full_map", "pooled"]


def init_kaiming(module: nn.Module) -> None:
    """Bag-of-tricks init: Kaiming normal for convs (fan_in) and linears (fan_out), BN to (1, 0).

    Meant for ``module.apply(init_kaiming)``; biases are set to zero.
    """
    if isinstance(module, nn.Linear):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_out")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Conv1d | nn.Conv2d):
        nn.init.kaiming_normal_(module.weight, a=0, mode="fan_in")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d) and module.affine:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def init_classifier(module: nn.Module) -> None:
    """Bag-of-tricks classifier init: weights ``N(0, 0.001^2)``, bias zero."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.001)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def _frame_vectors(feature_maps: Tensor, batch: int, seq_len: int) -> Tensor:
    """Global-average-pool ``[B*T, C, h, w]`` maps into ``[B, T, C]`` frame vectors."""
    return feature_maps.mean(dim=(2, 3)).view(batch, seq_len, -1)


class TemporalAvgPool(nn.Module):
    """TP: clip feature = mean over time of the frames' global-average-pooled features."""

    def forward(self, feature_maps: Tensor, batch: int, seq_len: int) -> tuple[Tensor, None]:
        """``[B*T, C, h, w]`` -> ``([B, C], None)``: no attention scores."""
        return _frame_vectors(feature_maps, batch, seq_len).mean(dim=1), None


class TemporalAttentionPool(nn.Module):
    """TA: attention-weighted sum over time of the frames' GAP features.

    One score vector per frame, then a temporal convolution and a softmax over the T frames:

    - ``"full_map"`` (faithful): ``Conv2d(C -> mid, kernel=(h, w))`` over the whole feature
      map + ReLU; ties the model to one input size (about 51M weights for ResNet-50 at 14x7).
    - ``"pooled"``: GAP first, then ``Linear(C -> mid)`` + ReLU; works for any input size.

    Both continue with ``Conv1d(mid -> 1, kernel 3, pad 1)`` over time + ReLU: the raw scores
    (:meth:`scores`, what the reference's ResNet50TA_BT2 returns as ``a_vals``), then a
    softmax over T.

    Args:
        in_channels: Channels ``C`` of the backbone feature map.
        mode: ``"full_map"`` or ``"pooled"``.
        feature_size: ``(h, w)`` of the feature map; required by ``"full_map"``.
        mid_channels: Width of the per-frame score vector (256 in the reference).

    Raises:
        ConfigError: unknown ``mode`` or ``"full_map"`` without ``feature_size``.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        mode: AttentionMode = "full_map",
        feature_size: tuple[int, int] | None = None,
        mid_channels: int = 256,
    ) -> None:
        super().__init__()
        self.mode = mode
        self.score: nn.Module
        if mode == "full_map":
            if feature_size is None:
                raise ConfigError("attention='full_map' needs the feature map size (h, w)")
            self.score = nn.Conv2d(in_channels, mid_channels, kernel_size=feature_size)
        elif mode == "pooled":
            self.score = nn.Linear(in_channels, mid_channels)
        else:
            raise ConfigError(f"attention={mode!r} must be 'full_map' or 'pooled'")
        self.temporal = nn.Conv1d(mid_channels, 1, kernel_size=3, padding=1)
        self.apply(init_kaiming)

    def scores(self, feature_maps: Tensor, batch: int, seq_len: int) -> Tensor:
        """Raw attention scores ``[B, T]`` (after the temporal ReLU, before the softmax)."""
        if self.mode == "full_map":
            vectors = F.relu(self.score(feature_maps)).flatten(1)
        else:
            vectors = F.relu(self.score(feature_maps.mean(dim=(2, 3))))
        vectors = vectors.view(batch, seq_len, -1).transpose(1, 2)  # [B, mid, T]
        return F.relu(self.temporal(vectors)).view(batch, seq_len)

    def attention(self, feature_maps: Tensor, batch: int, seq_len: int) -> Tensor:
        """Attention weights ``[B, T]`` (each row sums to 1) for ``[B*T, C, h, w]`` maps."""
        return F.softmax(self.scores(feature_maps, batch, seq_len), dim=1)

    def forward(self, feature_maps: Tensor, batch: int, seq_len: int) -> tuple[Tensor, Tensor]:
        """``[B*T, C, h, w]`` -> (clip features ``[B, C]``, raw scores ``[B, T]``)."""
        scores = self.scores(feature_maps, batch, seq_len)
        weights = F.softmax(scores, dim=1)
        frames = _frame_vectors(feature_maps, batch, seq_len)
        return (frames * weights.unsqueeze(-1)).sum(dim=1), scores


class BNNeck(nn.BatchNorm1d):
    """BatchNorm1d whose bias is frozen at zero (bag of tricks' BNNeck)."""

    def __init__(self, num_features: int) -> None:
        super().__init__(num_features)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)
        self.bias.requires_grad_(False)
