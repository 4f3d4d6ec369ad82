"""The pruning adapter: reports validation metrics to an Optuna trial, prunes when told to.

This and the objective (:mod:`hpo.worker`) are the only places where training meets Optuna;
``reid_core`` knows nothing of trials. Pruner steps are 0-based epoch indices of the
evaluated epochs.
"""

from __future__ import annotations

import warnings

import optuna

from reid_core.engine import Callback
from reid_core.engine import EpochReport

__all__ = ["OptunaPruningCallback"]


class OptunaPruningCallback(Callback):
    """Report ``metric`` after each evaluated epoch and prune the trial when the pruner says so.

    Epochs without metrics report nothing. A missing metric warns and is skipped, as the
    Lightning integration does, rather than failing the trial.

    Args:
        trial: The running Optuna trial.
        metric: Key of :attr:`EpochReport.metrics` to report (``"mAP"``, ``"rerank_mAP"``,
            ``"rank1"``).

    Raises:
        optuna.TrialPruned: From :meth:`on_epoch_end` when ``trial.should_prune()`` is true.

    Example:
        >>> callback = OptunaPruningCallback(trial, "mAP")  # doctest: +SKIP
        >>> Trainer(cfg).fit(callbacks=[callback])  # doctest: +SKIP
    """

    def __init__(self, trial: optuna.Trial, metric: str = "mAP") -> None:
        self._trial = trial
        self._metric = metric

    def on_epoch_end(self, report: EpochReport) -> None:
        """Report the epoch's metric and raise :class:`optuna.TrialPruned` if pruned."""
        if report.metrics is None:
            return
        value = report.metrics.get(self._metric)
        if value is None:
            warnings.warn(
                f"metric {self._metric!r} is missing at epoch {report.epoch + 1} "
                f"(available: {sorted(report.metrics)}); nothing reported to the pruner",
                stacklevel=2,
            )
            return
        self._trial.report(float(value), step=report.epoch)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {report.epoch + 1} (step {report.epoch})")
