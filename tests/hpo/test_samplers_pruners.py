"""Samplers and pruners built from the spec (identical in every worker)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from hpo.errors import SpecError
from hpo.search import build_pruner
from hpo.search import build_sampler
from hpo.search import suggest
from hpo.spec import first_comparable_step
from tests._helpers.specs import tiny_spec
from tests._helpers.specs import tiny_spec_dict


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("random", optuna.samplers.RandomSampler),
        ("gp", optuna.samplers.GPSampler),
        ("cmaes", optuna.samplers.CmaEsSampler),
        ("qmc", optuna.samplers.QMCSampler),
    ],
)
def test_build_sampler_by_name(name: str, cls: type) -> None:
    assert type(build_sampler(tiny_spec(sampler={"name": name, "seed": 1}))) is cls


def test_tpe_is_multivariate_with_constant_liar() -> None:
    sampler = build_sampler(tiny_spec(sampler={"name": "tpe", "seed": 0}))
    assert sampler._multivariate is True
    assert sampler._constant_liar is True


def test_sampler_options_are_passed_through() -> None:
    spec = tiny_spec(sampler={"name": "tpe", "seed": 0, "options": {"n_startup_trials": 3}})
    assert build_sampler(spec)._n_startup_trials == 3


def _first_params(spec: Any, *, seed_offset: int = 0) -> dict[str, Any]:
    study = optuna.create_study(sampler=build_sampler(spec, seed_offset=seed_offset))
    return suggest(study.ask(), spec)


def test_same_spec_gives_identical_samplers() -> None:
    spec = tiny_spec(sampler={"name": "random", "seed": 5})
    assert _first_params(spec) == _first_params(spec)


def test_seed_offset_separates_workers() -> None:
    spec = tiny_spec(sampler={"name": "random", "seed": 5})
    assert _first_params(spec) != _first_params(spec, seed_offset=1)


def test_qmc_ignores_the_seed_offset() -> None:
    spec = tiny_spec(sampler={"name": "qmc", "seed": 5, "options": {"scramble": True}})
    assert build_sampler(spec, seed_offset=3)._seed == 5


def test_median_pruner_options() -> None:
    spec = tiny_spec(
        pruner={"name": "median", "options": {"n_startup_trials": 2, "n_warmup_steps": 1}}
    )
    pruner = build_pruner(spec)
    assert isinstance(pruner, optuna.pruners.MedianPruner)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (2, 1)


def test_sha_and_none() -> None:
    assert isinstance(
        build_pruner(tiny_spec(pruner={"name": "sha"})), optuna.pruners.SuccessiveHalvingPruner
    )
    assert isinstance(build_pruner(tiny_spec(pruner={"name": "none"})), optuna.pruners.NopPruner)


def test_median_pruner_prunes_on_epoch_steps() -> None:
    spec = tiny_spec(
        pruner={"name": "median", "options": {"n_startup_trials": 1, "n_warmup_steps": 0}}
    )
    study = optuna.create_study(direction="maximize", pruner=build_pruner(spec))
    good = study.ask()
    for epoch in range(3):
        good.report(0.9, step=epoch)
    study.tell(good, 0.9)
    bad = study.ask()
    bad.report(0.1, step=0)
    assert bad.should_prune()


def test_unknown_pruner_option_is_a_spec_error_at_build_time() -> None:
    spec = tiny_spec()
    broken = spec.model_copy(
        update={"pruner": spec.pruner.model_copy(update={"options": {"bogus": 1}})}
    )
    with pytest.raises(SpecError, match="unknown option 'bogus'"):
        build_pruner(broken)


# Schedule-derived defaults: the first comparable step is the first epoch at the final LR.
DEMO_SCHEDULE = {"epochs": 6, "eval_every": 1, "warmup_epochs": 1, "milestones": [4]}
MARS_SCHEDULE = {"epochs": 121, "eval_every": 10, "warmup_epochs": 10, "milestones": [40, 70]}
# Without milestones gamma does nothing, and a study refuses to search it.
_NO_GAMMA = {k: v for k, v in tiny_spec_dict()["search_space"].items() if k != "gamma"}


def _scheduled(schedule: dict[str, Any], pruner: dict[str, Any], **overrides: Any) -> Any:
    training = {**tiny_spec_dict()["training"], **schedule}
    return tiny_spec(training=training, pruner=pruner, **overrides)


@pytest.mark.parametrize(("schedule", "step"), [(DEMO_SCHEDULE, 4), (MARS_SCHEDULE, 70)])
def test_median_defaults_follow_the_lr_schedule(schedule: dict[str, Any], step: int) -> None:
    spec = _scheduled(schedule, {"name": "median"})
    pruner = build_pruner(spec)
    assert type(pruner) is optuna.pruners.MedianPruner
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (5, step)
    assert first_comparable_step(spec) == step


def test_explicit_median_options_win_over_the_schedule() -> None:
    options = {"n_startup_trials": 5, "n_warmup_steps": 29}
    pruner = build_pruner(_scheduled(MARS_SCHEDULE, {"name": "median", "options": options}))
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (5, 29)


def test_only_unset_options_take_the_schedule_default() -> None:
    spec = _scheduled(DEMO_SCHEDULE, {"name": "median", "options": {"n_startup_trials": 2}})
    pruner = build_pruner(spec)
    assert (pruner._n_startup_trials, pruner._n_warmup_steps) == (2, 4)


def test_warmup_alone_sets_the_step_without_milestones() -> None:
    spec = _scheduled(
        {**MARS_SCHEDULE, "milestones": []}, {"name": "median"}, search_space=_NO_GAMMA
    )
    assert build_pruner(spec)._n_warmup_steps == 10


def test_milestones_after_the_last_epoch_are_ignored() -> None:
    spec = _scheduled({**DEMO_SCHEDULE, "milestones": [4, 10]}, {"name": "median"})
    assert build_pruner(spec)._n_warmup_steps == 4


def test_a_searched_warmup_uses_its_largest_value() -> None:
    space = {
        **tiny_spec_dict()["search_space"],
        "warmup_epochs": {"type": "int", "low": 0, "high": 5},
    }
    spec = _scheduled(DEMO_SCHEDULE, {"name": "median"}, search_space=space)
    assert build_pruner(spec)._n_warmup_steps == 5


def test_default_median_does_not_prune_before_the_first_comparable_step() -> None:
    spec = _scheduled(DEMO_SCHEDULE, {"name": "median", "options": {"n_startup_trials": 1}})
    study = optuna.create_study(direction="maximize", pruner=build_pruner(spec))
    good = study.ask()
    for epoch in range(6):
        good.report(0.9, step=epoch)
    study.tell(good, 0.9)
    bad = study.ask()
    for epoch in range(4):
        bad.report(0.1, step=epoch)
        assert not bad.should_prune(), epoch
    bad.report(0.1, step=4)
    assert bad.should_prune()


def test_patience_wraps_the_median_pruner() -> None:
    spec = _scheduled(DEMO_SCHEDULE, {"name": "median", "options": {"patience": 1}})
    pruner = build_pruner(spec)
    assert isinstance(pruner, optuna.pruners.PatientPruner)
    assert pruner._patience == 1
    assert (pruner._wrapped_pruner._n_startup_trials, pruner._wrapped_pruner._n_warmup_steps) == (
        5,
        4,
    )
    plain = build_pruner(_scheduled(DEMO_SCHEDULE, {"name": "median", "options": {"patience": 0}}))
    assert type(plain) is optuna.pruners.MedianPruner


def test_patient_median_prunes_only_a_trial_that_fell_below_its_earlier_best() -> None:
    options = {"n_startup_trials": 1, "n_warmup_steps": 0, "patience": 1}
    spec = _scheduled(DEMO_SCHEDULE, {"name": "median", "options": options})
    study = optuna.create_study(direction="maximize", pruner=build_pruner(spec))
    good = study.ask()
    for epoch in range(6):
        good.report(0.9, step=epoch)
    study.tell(good, 0.9)
    flat, falling = study.ask(), study.ask()
    for epoch in range(3):
        flat.report(0.1, step=epoch)
        falling.report(0.3 - 0.1 * epoch, step=epoch)
    # Both are below the median (0.9); only the one whose last 2 values are below its earlier
    # best is pruned.
    assert not flat.should_prune()
    assert falling.should_prune()


@pytest.mark.parametrize(("schedule", "step"), [(DEMO_SCHEDULE, 4), (MARS_SCHEDULE, 70)])
def test_hyperband_and_sha_start_at_the_first_comparable_step(
    schedule: dict[str, Any], step: int
) -> None:
    hyperband = build_pruner(_scheduled(schedule, {"name": "hyperband"}))
    assert isinstance(hyperband, optuna.pruners.HyperbandPruner)
    assert (hyperband._min_resource, hyperband._max_resource) == (step, schedule["epochs"])
    sha = build_pruner(_scheduled(schedule, {"name": "sha"}))
    assert sha._min_resource == step


def test_resources_start_at_eval_every_when_the_schedule_is_flat() -> None:
    schedule = {**MARS_SCHEDULE, "warmup_epochs": 0, "milestones": []}
    spec = _scheduled(schedule, {"name": "sha"}, search_space=_NO_GAMMA)
    assert build_pruner(spec)._min_resource == 10


def test_hyperband_min_resource_default_is_capped_at_max_resource() -> None:
    # The tiny recipe (3 epochs) is all warm-up (10 epochs): nothing is ever comparable.
    spec = tiny_spec(pruner={"name": "hyperband", "options": {"reduction_factor": 2}})
    pruner = build_pruner(spec)
    assert pruner._min_resource == pruner._max_resource == spec.training.epochs
