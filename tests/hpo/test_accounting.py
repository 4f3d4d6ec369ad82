"""Compute accounting: a study's epochs and device-seconds summed from its trials' records,
and the epochs its pruned trials did not train."""

from __future__ import annotations

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial

from hpo.study import REFERENCE_TRIALS
from hpo.study import compute_account
from hpo.study import trial_compute


def _trial(state: TrialState, epochs: int, seconds: float, device: str) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=state,
        value=0.5 if state == TrialState.COMPLETE else None,
        params={"x": 0.5},
        distributions={"x": FloatDistribution(0.0, 1.0)},
        intermediate_values={e: 0.5 for e in range(epochs)},
        user_attrs={
            "epochs_done": epochs,
            "epochs_trained": epochs,
            "device_seconds": seconds,
            "device": device,
        },
    )


def test_the_account_sums_the_trials_records_and_the_pruned_epochs() -> None:
    trials = [
        _trial(TrialState.COMPLETE, 6, 60.0, "cuda:0 (NVIDIA H100)"),
        _trial(TrialState.PRUNED, 2, 20.0, "cuda:0 (NVIDIA H100)"),
        _trial(TrialState.PRUNED, 5, 50.0, "cuda:0 (NVIDIA H100)"),
        _trial(TrialState.FAIL, 1, 10.0, "cuda:0 (NVIDIA H100)"),  # spent, but not finished
    ]
    account = compute_account(trials, epochs_per_trial=6)
    assert (account.epochs_trained, account.device_seconds) == (14, 140.0)
    assert account.unit == "GPU"
    assert (account.epochs_saved, account.unpruned_epochs) == (4 + 1, 3 * 6)
    assert account.seconds_per_epoch == 10.0
    assert account.reference_hours == round(REFERENCE_TRIALS * 6 * 10.0 / 3600, 3)
    text = "\n".join(account.lines())
    assert "14 epochs, 140 GPU-seconds on cuda:0 (NVIDIA H100)" in text
    assert "pruning saved 5 of 18 epochs (28%; 2 of 3 finished trials pruned)" in text


def test_on_a_cpu_the_account_says_device_seconds_and_names_the_device() -> None:
    account = compute_account([_trial(TrialState.COMPLETE, 2, 8.0, "cpu")], epochs_per_trial=2)
    assert account.lines()[0] == "compute: 2 epochs, 8 device-seconds on cpu"
    assert trial_compute(_trial(TrialState.COMPLETE, 2, 8.0, "cpu")).describe() == (
        "2 epochs, 8 device-seconds on cpu"
    )
