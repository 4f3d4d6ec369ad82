"""Progress lines a person reads at a glance: trial x/N, epoch e/E (1-based), elapsed, ETA.

One plain log line per epoch (the trainer draws its per-step bar only on a terminal), so the
same text lands in a terminal, a SLURM log or ``kubectl logs``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

from reid_core.engine import Callback
from reid_core.engine import EpochReport
from reid_core.engine import TrainerView

logger = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    """``H:MM:SS`` of a duration, rounded to the second.

    Example:
        >>> format_duration(3725.4)
        '1:02:05'
    """
    return str(dt.timedelta(seconds=round(max(seconds, 0.0))))


def format_params(params: dict[str, Any]) -> str:
    """Trial parameters on one line, floats with 4 significant digits.

    Example:
        >>> format_params({"margin": 0.000123456, "lr": 0.00035, "p": 8})
        'margin=0.0001235, lr=0.00035, p=8'
    """
    return ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()
    )


def format_metrics(metrics: dict[str, float], keys: tuple[str, ...]) -> str:
    """Validation metrics in % (``mAP 45.1%, rank1 62.5%``), in the order of ``keys``.

    Example:
        >>> format_metrics({"mAP": 0.4512, "rank1": 0.625}, ("mAP", "rank1", "rank5"))
        'mAP 45.1%, rank1 62.5%'
    """
    return ", ".join(f"{k} {100.0 * metrics[k]:.1f}%" for k in keys if k in metrics)


def trial_label(position: int, budget: int | None, number: int) -> str:
    """``trial 5 (4/8)``: Optuna's trial number (the one the report, ``study best`` and
    optuna-dashboard show), then the trial's position in the study budget.

    Example:
        >>> trial_label(4, 8, 5)
        'trial 5 (4/8)'
        >>> trial_label(4, None, 5)
        'trial 5 (4)'
    """
    of = f"/{budget}" if budget else ""
    return f"trial {number} ({position}{of})"


class TrialProgress(Callback):
    """Logs one line per epoch: trial x/N, epoch e/E, elapsed and ETA of the trial, loss,
    and the validation metrics in % when the epoch was evaluated.

    Args:
        label: The trial's label (:func:`trial_label`).
        epochs: Epochs of the training schedule (E).
        metric_keys: Validation metrics to show, in order.
        clock: Monotonic clock (tests inject a fake one).
    """

    def __init__(
        self,
        label: str,
        *,
        epochs: int,
        metric_keys: tuple[str, ...] = ("mAP", "rank1"),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.epochs = epochs
        self.metric_keys = metric_keys
        self._clock = clock
        self._started = clock()
        self._epochs_here = 0

    def on_train_start(self, trainer: TrainerView) -> None:
        self._started = self._clock()
        self._epochs_here = 0

    def on_epoch_end(self, report: EpochReport) -> None:
        self._epochs_here += 1
        elapsed = self._clock() - self._started
        remaining = max(self.epochs - (report.epoch + 1), 0)
        eta = elapsed / self._epochs_here * remaining
        parts = [
            f"{self.label} epoch {report.epoch + 1}/{self.epochs}",
            f"elapsed {format_duration(elapsed)}",
            f"ETA {format_duration(eta)}",
            f"loss {report.losses.get('total', float('nan')):.4f}",
        ]
        if report.metrics:
            parts.append("val " + format_metrics(report.metrics, self.metric_keys))
        line = ", ".join(parts)
        logger.info("%s", line)


__all__ = ["TrialProgress", "format_duration", "format_metrics", "format_params", "trial_label"]
