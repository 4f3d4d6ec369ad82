"""The pruning adapter: reports validation metrics to an Optuna trial, prunes when told to.

This and the objective (:mod:`hpo.worker`) are the only places where training meets Optuna;
``reid_core`` knows nothing of trials. Pruner steps are 0-based epoch indices of the
evaluated epochs.
"""

from __future__ import annotations

import math
import statistics
import warnings

import optuna
from optuna.trial import TrialState

from hpo.study.records import TrialAttr
from hpo.study.records import format_pct
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
            against = compared_with(self._trial, self._metric, report.epoch)
            self._trial.set_user_attr(TrialAttr.PRUNED_AGAINST, against)
            raise optuna.TrialPruned(f"pruned after epoch {report.epoch + 1}: {against}")


def compared_with(trial: optuna.Trial, metric: str, step: int) -> str:
    """What a pruned trial was compared with, in words: its best value so far (what Optuna's
    median pruner compares) and the median of the COMPLETE trials at the same epoch.

    Example:
        ``val mAP 41.2% (its best) below the median 61.2% of 5 complete trials at epoch 5``
    """
    study = trial.study
    mine = [v for s, v in _intermediate(trial).items() if s <= step and math.isfinite(v)]
    pick = max if study.direction == optuna.study.StudyDirection.MAXIMIZE else min
    others = [
        t.intermediate_values[step]
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if step in t.intermediate_values and math.isfinite(t.intermediate_values[step])
    ]
    own = f"val {metric} {format_pct(pick(mine))} (its best)" if mine else f"val {metric}"
    epoch = step + 1
    if not others:
        return f"{own}; no complete trial reached epoch {epoch}"
    median = statistics.median(others)
    where = f"of {len(others)} complete trials at epoch {epoch}"
    if _is_median_pruner(study.pruner):
        side = "below" if pick is max else "above"
        return f"{own} {side} the median {format_pct(median)} {where}"
    name = type(study.pruner).__name__
    return f"{own}, {name}; the median {where} was {format_pct(median)}"


def _intermediate(trial: optuna.Trial) -> dict[int, float]:
    (frozen,) = (t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
    return dict(frozen.intermediate_values)


def _is_median_pruner(pruner: optuna.pruners.BasePruner) -> bool:
    # reid-hpo wraps only its median pruner in a PatientPruner (hpo.search.build_pruner).
    return isinstance(pruner, optuna.pruners.MedianPruner | optuna.pruners.PatientPruner)
