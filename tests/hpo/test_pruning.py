"""OptunaPruningCallback: reports evaluated epochs, prunes when the pruner says so."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import FloatDistribution
from optuna.trial import create_trial

from hpo.worker import OptunaPruningCallback
from reid_core.engine import EpochReport


def _report(epoch: int, metrics: dict[str, float] | None) -> EpochReport:
    return EpochReport(epoch=epoch, losses={"total": 1.0}, lr=0.1, metrics=metrics)


def _study_with_a_good_finished_trial() -> optuna.Study:
    """A maximising study whose one COMPLETE trial reached mAP 0.9 at epoch 0."""
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1)
    )
    study.add_trial(
        create_trial(
            value=0.9,
            params={"x": 0.5},
            distributions={"x": FloatDistribution(0.0, 1.0)},
            intermediate_values={0: 0.9, 1: 0.9},
        )
    )
    return study


def test_evaluated_epochs_are_reported_at_their_epoch_index() -> None:
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.NopPruner())
    trial = study.ask()
    callback = OptunaPruningCallback(trial, "mAP")
    callback.on_epoch_end(_report(1, {"mAP": 0.25, "rank1": 0.5}))
    callback.on_epoch_end(_report(3, {"mAP": 0.5, "rank1": 0.75}))
    study.tell(trial, 0.5)
    assert study.trials[0].intermediate_values == {1: 0.25, 3: 0.5}


def test_epochs_without_metrics_report_nothing() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    OptunaPruningCallback(trial, "mAP").on_epoch_end(_report(0, None))
    study.tell(trial, 0.0)
    assert study.trials[0].intermediate_values == {}


def test_trial_behind_the_median_is_pruned_with_its_epoch() -> None:
    study = _study_with_a_good_finished_trial()
    trial = study.ask()
    said = r"pruned after epoch 1: val mAP 10.0% \(its best\) below the median 90.0% of 1 "
    with pytest.raises(optuna.TrialPruned, match=said + "complete trials at epoch 1"):
        OptunaPruningCallback(trial, "mAP").on_epoch_end(_report(0, {"mAP": 0.1}))
    # The same words stay with the trial, for the report and the dashboard.
    assert study.trials[-1].user_attrs["pruned_against"].startswith("val mAP 10.0%")


def test_trial_ahead_of_the_median_goes_on() -> None:
    study = _study_with_a_good_finished_trial()
    trial = study.ask()
    callback = OptunaPruningCallback(trial, "mAP")
    callback.on_epoch_end(_report(0, {"mAP": 0.95}))  # would raise TrialPruned if pruned
    callback.on_epoch_end(_report(1, {"mAP": 0.97}))
    assert not trial.should_prune()
    study.tell(trial, 0.97)
    assert study.trials[-1].state is optuna.trial.TrialState.COMPLETE
    assert study.trials[-1].intermediate_values == {0: 0.95, 1: 0.97}


def test_the_configured_metric_is_reported() -> None:
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    OptunaPruningCallback(trial, "rerank_mAP").on_epoch_end(
        _report(0, {"mAP": 0.1, "rerank_mAP": 0.7})
    )
    study.tell(trial, 0.7)
    assert study.trials[0].intermediate_values == {0: 0.7}


def test_missing_metric_warns_and_reports_nothing() -> None:
    study = _study_with_a_good_finished_trial()
    trial = study.ask()
    with pytest.warns(UserWarning, match="'rerank_mAP' is missing at epoch 3"):
        OptunaPruningCallback(trial, "rerank_mAP").on_epoch_end(_report(2, {"mAP": 0.01}))
    study.tell(trial, 0.0)
    assert study.trials[-1].intermediate_values == {}
