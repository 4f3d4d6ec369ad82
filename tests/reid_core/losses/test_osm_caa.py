"""OSM + CAA against hand-computed values; no NaN on degenerate batches."""

from __future__ import annotations

import math

import pytest
import torch

from reid_core.errors import ConfigError
from reid_core.losses import OSMCAALoss


def _normalise(v: list[float]) -> list[float]:
    norm = math.sqrt(sum(c * c for c in v))
    return [c / norm for c in v]


def _osm_by_hand(
    feats: list[list[float]],
    labels: list[int],
    protos: list[list[float]],
    alpha: float,
    l: float,  # noqa: E741
    sigma: float,
) -> float:
    x = [_normalise(f) for f in feats]
    p = [_normalise(q) for q in protos]
    attention = []
    for xi, yi in zip(x, labels, strict=True):
        scores = [math.exp(sum(a * b for a, b in zip(xi, pc, strict=True))) for pc in p]
        attention.append(scores[yi] / sum(scores))
    num_p = den_p = num_n = den_n = 0.0
    for i in range(len(x)):
        for j in range(len(x)):
            if i == j:
                continue
            d = math.dist(x[i], x[j])
            a = min(attention[i], attention[j])
            if labels[i] == labels[j]:
                w = math.exp(-(d**2) / sigma**2) * a
                num_p += w * d**2
                den_p += w
            else:
                hinge = max(0.0, alpha - d)
                w = hinge * a
                num_n += w * hinge**2
                den_n += w
    loss_p = 0.5 * num_p / den_p if den_p > 0 else 0.0
    loss_n = 0.5 * num_n / den_n if den_n > 0 else 0.0
    return (1 - l) * loss_p + l * loss_n


FEATS = [[2.0, 0.5, 0.0], [1.0, 1.0, 0.2], [0.1, 2.0, 1.0], [-0.5, 1.0, 1.5], [0.3, -1.0, 0.4]]
LABELS = [0, 0, 1, 1, 2]
PROTOS = [[1.0, 0.3, 0.0], [0.0, 1.0, 0.8], [0.2, -1.0, 0.1]]


@pytest.mark.parametrize(("alpha", "l", "sigma"), [(1.2, 0.5, 0.8), (2.0, 0.3, 0.4)])
def test_matches_hand_computation(alpha: float, l: float, sigma: float) -> None:  # noqa: E741
    loss = OSMCAALoss(alpha=alpha, l=l, sigma=sigma)(
        torch.tensor(FEATS), torch.tensor(LABELS), torch.tensor(PROTOS)
    )
    expected = _osm_by_hand(FEATS, LABELS, PROTOS, alpha, l, sigma)
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_single_positive_pair_has_closed_form() -> None:
    # Orthogonal unit features: d^2 = 2, one pair, so L_P = 1/2 * 2 whatever the weight.
    loss = OSMCAALoss(alpha=1.2, l=0.25, sigma=0.8)(
        torch.eye(2), torch.tensor([0, 0]), torch.eye(2)
    )
    assert loss.item() == pytest.approx(0.75)


def test_single_negative_pair_has_closed_form() -> None:
    loss = OSMCAALoss(alpha=2.0, l=0.5, sigma=0.8)(torch.eye(2), torch.tensor([0, 1]), torch.eye(2))
    assert loss.item() == pytest.approx(0.5 * 0.5 * (2.0 - math.sqrt(2.0)) ** 2, rel=1e-5)


@pytest.mark.parametrize(
    "labels", [[0, 0, 0, 0], [0, 1, 2, 3]], ids=["all-same-id", "all-different-ids"]
)
def test_degenerate_batches_give_finite_loss_and_gradients(labels: list[int]) -> None:
    feats = torch.randn(4, 6, requires_grad=True)
    protos = torch.randn(4, 6, requires_grad=True)
    loss = OSMCAALoss()(feats, torch.tensor(labels), protos)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(feats.grad).all()
    assert torch.isfinite(protos.grad).all()


def test_negatives_beyond_alpha_give_zero_not_nan() -> None:
    # Opposite features: d = 2 > alpha, so every negative weight is 0.
    feats = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    loss = OSMCAALoss(alpha=1.2, l=1.0)(feats, torch.tensor([0, 1]), torch.eye(2))
    assert loss.item() == 0.0


def test_prototype_dimension_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[num_classes, 3\]"):
        OSMCAALoss()(torch.randn(2, 3), torch.tensor([0, 1]), torch.randn(2, 4))


def test_parameters_out_of_range_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"l=1\.5"):
        OSMCAALoss(l=1.5)
