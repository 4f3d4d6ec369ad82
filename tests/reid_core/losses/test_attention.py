"""The Attn-CL attention loss against the reference's formula; its place in the total."""

from __future__ import annotations

import pytest
import torch

from reid_core.config import LossConfig
from reid_core.errors import ConfigError
from reid_core.losses import ReidCriterion
from reid_core.losses import attention_loss
from reid_core.models import ReidOutput

# (batch 4, T 4) raw attention scores, >= 0 as after the temporal ReLU, and erased labels
SCORES = [[0.5, 0.0, 1.25, 2.0], [0.0, 0.3, 0.3, 0.1], [3.0, 1.0, 0.0, 0.7], [0.2, 0.2, 0.9, 0.4]]
ERASED = [[1, 0, 0, 1], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 0, 0]]


def _reference_attention_loss(a_vals: list[list[float]], labels: list[list[int]]) -> float:
    """config_trainer.py train_attn: attn_noise = a_vals * labels; attn_noise.sum(1).mean()."""
    per_clip = [sum(a * e for a, e in zip(row, erased, strict=True)) for row, erased in
                zip(a_vals, labels, strict=True)]  # fmt: skip
    return sum(per_clip) / len(per_clip)


def test_matches_the_reference_formula() -> None:
    loss = attention_loss(torch.tensor(SCORES), torch.tensor(ERASED))
    assert loss.item() == pytest.approx(_reference_attention_loss(SCORES, ERASED))
    assert loss.item() == pytest.approx((2.5 + 0 + 4.7 + 0.2) / 4)


def test_gradient_reaches_only_the_erased_frames_scores() -> None:
    scores = torch.tensor(SCORES, requires_grad=True)
    attention_loss(scores, torch.tensor(ERASED, dtype=torch.float32)).backward()
    assert torch.equal(scores.grad, torch.tensor(ERASED, dtype=torch.float32) / len(SCORES))


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(4, 4\).*\(4, 3\)"):
        attention_loss(torch.tensor(SCORES), torch.tensor(ERASED)[:, :3])


def _output(scores: torch.Tensor | None) -> ReidOutput:
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(4, 8, generator=gen)
    return ReidOutput(torch.randn(4, 2, generator=gen), features, features, scores)


def _criterion(weight: float) -> ReidCriterion:
    return ReidCriterion(LossConfig(attention_weight=weight), num_classes=2, feat_dim=8)


def test_the_total_adds_the_weighted_attention_term() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    output, erased = _output(torch.tensor(SCORES)), torch.tensor(ERASED, dtype=torch.float32)
    criterion, baseline = _criterion(0.5), _criterion(0.0)
    baseline.load_state_dict(criterion.state_dict())  # the same centers
    with_term = criterion(output, labels, erased=erased)
    without = baseline(output, labels, erased=erased)
    expected = _reference_attention_loss(SCORES, ERASED)
    assert with_term["attention"].item() == pytest.approx(expected)
    assert without["attention"].item() == 0.0  # weight 0: not computed, reported as 0
    assert (with_term["total"] - without["total"]).item() == pytest.approx(0.5 * expected)


def test_the_attention_term_needs_scores_and_labels() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ConfigError, match="temporal attention"):
        _criterion(1.0)(_output(None), labels, erased=torch.zeros(4, 4))
    with pytest.raises(ConfigError, match="erased-frame labels"):
        _criterion(1.0)(_output(torch.tensor(SCORES)), labels)
    with pytest.raises(ConfigError, match="attention_weight=-1"):
        _criterion(-1.0)
