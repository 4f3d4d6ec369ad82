"""The warm-up multi-step learning-rate schedule of the reference recipe."""

from __future__ import annotations

import pytest
import torch

from reid_core.engine import WarmupMultiStepLR
from reid_core.engine import warmup_multistep_factor
from reid_core.errors import ConfigError

RECIPE = {"milestones": (40, 70), "gamma": 0.1, "warmup_factor": 0.01, "warmup_epochs": 10}


@pytest.mark.parametrize(
    ("epoch", "factor"),
    [
        (0, 0.01),  # warm-up starts at warmup_factor
        (5, 0.505),  # linear half way
        (9, 0.901),
        (10, 1.0),  # warm-up over
        (39, 1.0),
        (40, 0.1),  # first milestone
        (69, 0.1),
        (70, 0.01),  # second milestone
        (120, 0.01),
    ],
)
def test_factor_follows_the_reference_recipe(epoch: int, factor: float) -> None:
    assert warmup_multistep_factor(epoch, **RECIPE) == pytest.approx(factor)


def test_no_warmup_starts_at_the_base_rate() -> None:
    assert (
        warmup_multistep_factor(0, milestones=(2,), gamma=0.5, warmup_factor=0.1, warmup_epochs=0)
        == 1.0
    )


def test_scheduler_sets_the_optimiser_rate_per_epoch() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=2.0)
    scheduler = WarmupMultiStepLR(optimizer, **RECIPE)
    seen = []
    for _ in range(72):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [2.0 * warmup_multistep_factor(e, **RECIPE) for e in range(72)]
    assert seen == pytest.approx(expected)


def test_scheduler_state_round_trips() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    first = WarmupMultiStepLR(torch.optim.Adam([param], lr=1.0), **RECIPE)
    for _ in range(12):
        first.optimizer.step()
        first.step()
    second_opt = torch.optim.Adam([param], lr=1.0)
    second = WarmupMultiStepLR(second_opt, **RECIPE)
    second.load_state_dict(first.state_dict())
    second_opt.step()
    second.step()
    assert second.last_epoch == 13
    assert second_opt.param_groups[0]["lr"] == pytest.approx(1.0)


def test_decreasing_milestones_are_refused() -> None:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match="milestones"):
        WarmupMultiStepLR(
            optimizer, milestones=(70, 40), gamma=0.1, warmup_factor=0.01, warmup_epochs=10
        )
