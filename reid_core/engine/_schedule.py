"""The per-epoch learning-rate schedule of the reference: linear warm-up, then step decay."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from reid_core.errors import ConfigError


def warmup_multistep_factor(
    epoch: int,
    *,
    milestones: Sequence[int],
    gamma: float,
    warmup_factor: float,
    warmup_epochs: int,
) -> float:
    """Multiplier of the base learning rate at a 0-based ``epoch``.

    During warm-up the factor rises linearly from ``warmup_factor`` (epoch 0) to 1 (epoch
    ``warmup_epochs``); it is then multiplied by ``gamma`` once per milestone already reached.

    Args:
        epoch: 0-based epoch index.
        milestones: Epochs at which the rate is multiplied by ``gamma``, increasing.
        gamma: Decay factor applied at each milestone.
        warmup_factor: Factor at epoch 0.
        warmup_epochs: Length of the linear warm-up; 0 disables it.

    Returns:
        The factor, e.g. 0.01 at epoch 0 and 0.1 at epoch 40 with the reference recipe.

    Example:
        >>> warmup_multistep_factor(5, milestones=(40, 70), gamma=0.1, warmup_factor=0.01,
        ...                         warmup_epochs=10)
        0.505
    """
    factor = 1.0
    if epoch < warmup_epochs:
        alpha = epoch / warmup_epochs
        factor = warmup_factor * (1.0 - alpha) + alpha
    return factor * gamma ** bisect_right(list(milestones), epoch)


class WarmupMultiStepLR(LRScheduler):
    """:func:`warmup_multistep_factor` as a torch scheduler; call :meth:`step` once per epoch.

    Args:
        optimizer: The optimiser whose parameter groups are scheduled.
        milestones: Increasing epochs at which the rate is multiplied by ``gamma``.
        gamma: Decay factor.
        warmup_factor: Factor at epoch 0, in (0, 1].
        warmup_epochs: Warm-up length in epochs (>= 0).

    Raises:
        ConfigError: If the milestones are not increasing or a factor is out of range.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        *,
        milestones: Sequence[int],
        gamma: float,
        warmup_factor: float,
        warmup_epochs: int,
    ) -> None:
        if list(milestones) != sorted(milestones):
            raise ConfigError(f"milestones={tuple(milestones)} must be increasing")
        if not 0.0 < warmup_factor <= 1.0:
            raise ConfigError(f"warmup_factor={warmup_factor} must be in (0, 1]")
        if warmup_epochs < 0:
            raise ConfigError(f"warmup_epochs={warmup_epochs} must be >= 0")
        self.milestones = tuple(milestones)
        self.gamma = gamma
        self.warmup_factor = warmup_factor
        self.warmup_epochs = warmup_epochs
        super().__init__(optimizer)

    def _factor(self) -> float:
        return warmup_multistep_factor(
            self.last_epoch,
            milestones=self.milestones,
            gamma=self.gamma,
            warmup_factor=self.warmup_factor,
            warmup_epochs=self.warmup_epochs,
        )

    def get_lr(self) -> list[float]:  # type: ignore[override]
        """Learning rates of every parameter group at ``self.last_epoch``."""
        factor = self._factor()
        return [base_lr * factor for base_lr in self.base_lrs]
