"""Center loss."""

from __future__ import annotations

import pytest
import torch

from reid_core.losses import CenterLoss


def test_one_center_per_real_class() -> None:
    loss = CenterLoss(num_classes=13, feat_dim=6)
    assert loss.centers.shape == (13, 6)
    assert loss.centers.requires_grad


def test_value_is_mean_squared_distance_to_own_center() -> None:
    loss = CenterLoss(num_classes=2, feat_dim=2)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    feats = torch.tensor([[3.0, 4.0], [1.0, 2.0]])
    value = loss(feats, torch.tensor([0, 1]))
    assert value.item() == pytest.approx((25.0 + 1.0) / 2)
