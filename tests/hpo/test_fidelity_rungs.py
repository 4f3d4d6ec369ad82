"""The worker's rung decisions on an in-memory study (no training): promotions within the epoch
budget and exactly once, Hyperband placement of new configurations, the epoch budget rule."""

from __future__ import annotations

import doctest

import optuna
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from hpo.search import RungPlan
from hpo.search import brackets
from hpo.study.records import Rung
from hpo.study.records import rung_of
from hpo.worker import _rungs
from hpo.worker._rungs import EpochCounts
from hpo.worker._rungs import enqueue_promotions
from hpo.worker._rungs import next_epochs
from hpo.worker._rungs import place_new_trial

SHA = RungPlan("sha", 2, (2, 4, 8), brackets("sha", 3, 2))
HYPERBAND = RungPlan("hyperband", 3, (1, 3, 9), brackets("hyperband", 3, 3))
X = {"x": FloatDistribution(0.0, 1.0)}


def test_docstring_examples_hold() -> None:
    assert doctest.testmod(_rungs).failed == 0


def _done(
    study: optuna.Study, value: float, rung: Rung, state: TrialState = TrialState.COMPLETE
) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            value=value if state is TrialState.COMPLETE else None,
            params={"x": value},
            distributions=X,
            user_attrs={"fidelity": rung.to_attr(), "seed": 7},
        )
    )


def test_promotions_fit_the_epoch_budget_and_happen_once() -> None:
    study = optuna.create_study(direction="maximize")
    for config, value in enumerate([0.2, 0.9, 0.5, 0.7]):
        _done(study, value, Rung(config, 0, 0, 2, top=False))
    # 8 epochs finished; 4 more allow one 4-epoch promotion of the two due (0.9, then 0.7).
    assert [r.config for r in enqueue_promotions(study, SHA, budget=12, direction="maximize")] == [
        1
    ]
    assert EpochCounts.of(study.get_trials(), SHA) == EpochCounts(
        finished=8, waiting=4, waiting_trials=1
    )
    promoted = study.ask(X)  # the enqueued trial: the same parameters, seed and configuration
    assert (promoted.params, promoted.user_attrs["seed"]) == ({"x": 0.9}, 7)
    assert rung_of(promoted) == Rung(1, 0, 1, 4, top=False)
    # A larger budget lets the second through; the first is never promoted twice.
    assert [
        r.config for r in enqueue_promotions(study, SHA, budget=None, direction="maximize")
    ] == [3]
    assert enqueue_promotions(study, SHA, budget=None, direction="maximize") == []


def test_a_failed_promoted_trial_is_not_promoted_again_and_minimize_ranks_low_first() -> None:
    study = optuna.create_study(direction="minimize")
    for config, value in enumerate([0.2, 0.9]):
        _done(study, value, Rung(config, 0, 0, 2, top=False))
    _done(study, 0.0, Rung(0, 0, 1, 4, top=False), state=TrialState.FAIL)
    assert enqueue_promotions(study, SHA, budget=None, direction="minimize") == []
    _done(study, 0.1, Rung(2, 0, 0, 2, top=False))
    _done(study, 0.3, Rung(3, 0, 0, 2, top=False))
    # Four results: the best half is configurations 2 (0.1) and 0 (0.2, already promoted).
    assert [
        r.config for r in enqueue_promotions(study, SHA, budget=None, direction="minimize")
    ] == [2]


def test_hyperband_places_new_configurations_on_each_brackets_bottom_rung() -> None:
    study = optuna.create_study(direction="maximize")
    placed = []
    for _ in range(17):
        epochs = next_epochs(study.get_trials(), HYPERBAND)
        trial = study.ask(X)
        rung = place_new_trial(trial, HYPERBAND)
        assert rung.epochs == epochs
        placed.append((rung.bracket, rung.rung, rung.top))
        study.tell(trial, 0.5)
    # Shares 9, 5, 3 of one Hyperband round, bracket b starting at rung b (rung 2: the full one).
    assert sorted(set(placed)) == [(0, 0, False), (1, 1, False), (2, 2, True)]
    assert [sum(1 for p in placed if p[0] == b) for b in range(3)] == [9, 5, 3]
    # A trial that carries its rung (a promotion or a retry) keeps it.
    retry = study.ask(X)
    retry.set_user_attr("fidelity", Rung(4, 1, 2, 9, top=True).to_attr())
    assert place_new_trial(retry, HYPERBAND) == Rung(4, 1, 2, 9, top=True)
