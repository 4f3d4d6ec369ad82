"""Label-smoothed cross-entropy."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from reid_core.errors import ConfigError
from reid_core.losses import CrossEntropyLabelSmooth


def test_known_value_with_smoothing() -> None:
    loss = CrossEntropyLabelSmooth(3, epsilon=0.1)(
        torch.tensor([[2.0, 0.0, 0.0]]), torch.tensor([0])
    )
    log_z = math.log(math.exp(2.0) + 2.0)
    target = [0.9 + 0.1 / 3, 0.1 / 3, 0.1 / 3]
    log_probs = [2.0 - log_z, -log_z, -log_z]
    expected = -sum(t * lp for t, lp in zip(target, log_probs, strict=True))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_zero_epsilon_is_plain_cross_entropy() -> None:
    logits, labels = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 0, 1])
    loss = CrossEntropyLabelSmooth(4, epsilon=0.0)(logits, labels)
    assert torch.allclose(loss, F.cross_entropy(logits, labels))


def test_epsilon_outside_unit_interval_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"epsilon=1\.5"):
        CrossEntropyLabelSmooth(3, epsilon=1.5)
