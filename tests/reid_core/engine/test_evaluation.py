"""Feature extraction (clip averaging) and the distance used for ranking."""

from __future__ import annotations

from typing import NamedTuple

import pytest
import torch
from torch import nn

from reid_core.engine import extract_features
from reid_core.engine import squared_euclidean
from reid_core.errors import EvaluationError


class _Out(NamedTuple):
    logits: torch.Tensor
    features: torch.Tensor
    bn_features: torch.Tensor


class _MeanPixel(nn.Module):
    """Feature of a clip = mean pixel value per channel; remembers its batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def forward(self, x: torch.Tensor) -> _Out:
        self.batch_sizes.append(x.shape[0])
        feats = x.mean(dim=(1, 3, 4))
        return _Out(feats, feats, feats)


def _tracklet(values: list[float], pid: int, camid: int) -> tuple[torch.Tensor, int, int]:
    clips = torch.stack([torch.full((2, 3, 4, 2), v) for v in values])  # [N, T, 3, H, W]
    return clips, pid, camid


def test_tracklet_feature_is_the_mean_of_its_clip_features() -> None:
    loader = [_tracklet([1.0, 2.0, 6.0], 7, 0), _tracklet([4.0], 8, 1)]
    model = _MeanPixel().train()
    feats, pids, camids = extract_features(model, loader, device="cpu", chunk=2)
    assert torch.allclose(feats, torch.tensor([[3.0] * 3, [4.0] * 3]))
    assert pids.tolist() == [7, 8]
    assert camids.tolist() == [0, 1]
    assert model.batch_sizes == [2, 1, 1]  # 3 clips in chunks of 2, then 1 clip
    assert model.training  # the train/eval mode is restored


def test_leading_batch_dimension_of_one_is_accepted() -> None:
    clips, pid, camid = _tracklet([1.0, 3.0], 5, 2)
    loader = [(clips.unsqueeze(0), torch.tensor([pid]), torch.tensor([camid]))]
    feats, pids, _ = extract_features(_MeanPixel(), loader, device="cpu")
    assert torch.allclose(feats, torch.full((1, 3), 2.0))
    assert pids.tolist() == [5]


def test_empty_loader_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match="empty"):
        extract_features(_MeanPixel(), [], device="cpu")


def test_squared_euclidean_matches_cdist_squared() -> None:
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(5, 16, generator=generator)
    g = torch.randn(7, 16, generator=generator)
    assert torch.allclose(squared_euclidean(q, g), torch.cdist(q, g) ** 2, atol=1e-4)
    assert squared_euclidean(q, q).diagonal().min() >= 0.0
