"""Batch-hard triplet loss: the hardest pairs are the ones picked, for both distances."""

from __future__ import annotations

import math

import pytest
import torch

from reid_core.errors import ConfigError
from reid_core.losses import TripletLoss

# Identity 0 at x = 0, 1, 3; identity 1 at x = 4, 10 (on a line).
LINE = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [4.0, 0.0], [10.0, 0.0]])
LINE_LABELS = torch.tensor([0, 0, 0, 1, 1])


def test_euclidean_picks_the_farthest_positive_and_closest_negative() -> None:
    mined = TripletLoss(0.3, distance="euclidean").mine(LINE, LINE_LABELS)
    assert mined.positive_idx.tolist() == [2, 2, 0, 4, 3]
    assert mined.negative_idx.tolist() == [3, 3, 3, 2, 2]
    assert torch.allclose(mined.dist_ap, torch.tensor([3.0, 2.0, 3.0, 6.0, 6.0]), atol=1e-5)
    assert torch.allclose(mined.dist_an, torch.tensor([4.0, 3.0, 1.0, 1.0, 7.0]), atol=1e-5)


def test_euclidean_loss_value() -> None:
    loss = TripletLoss(0.3, distance="euclidean")(LINE, LINE_LABELS)
    assert loss.item() == pytest.approx((2.3 + 5.3) / 5, rel=1e-5)


def test_cosine_picks_by_angle_not_norm() -> None:
    # Anchor (1, 0); positives: a long vector at ~5.7 degrees, a short one at 45 degrees.
    feats = torch.tensor([[1.0, 0.0], [10.0, 1.0], [0.5, 0.5], [0.0, 0.1], [-3.0, 3.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    cosine = TripletLoss(0.3, distance="cosine").mine(feats, labels)
    euclidean = TripletLoss(0.3, distance="euclidean").mine(feats, labels)
    assert cosine.positive_idx[0].item() == 2
    assert euclidean.positive_idx[0].item() == 1
    assert cosine.negative_idx[0].item() == 3  # 90 degrees beats 135 degrees
    assert euclidean.negative_idx[0].item() == 3  # distance ~1.005 beats ~5
    assert cosine.dist_ap[0].item() == pytest.approx(1 - math.cos(math.pi / 4), rel=1e-5)


def test_cosine_loss_value() -> None:
    angles = [0.0, 20.0, 60.0, 90.0, 170.0]
    feats = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])
    loss = TripletLoss(0.1, distance="cosine")(feats, LINE_LABELS)

    def d(a: float, b: float) -> float:
        return 1 - math.cos(math.radians(a - b))

    gaps = [d(0, 60) - d(0, 90), d(20, 60) - d(20, 90), d(60, 0) - d(60, 90)]
    gaps += [d(90, 170) - d(90, 60), d(170, 90) - d(170, 60)]
    expected = sum(max(0.0, g + 0.1) for g in gaps) / 5
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_single_identity_batch_gives_zero_not_nan() -> None:
    feats = torch.randn(4, 8, requires_grad=True)
    loss = TripletLoss(0.3)(feats, torch.zeros(4, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(feats.grad).all()


def test_unknown_distance_is_refused() -> None:
    with pytest.raises(ConfigError, match="manhattan"):
        TripletLoss(0.3, distance="manhattan")  # type: ignore[arg-type]
