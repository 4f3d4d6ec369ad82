"""Samplers and pruners built from the spec (identical in every worker)."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from hpo.errors import SpecError
from hpo.pruners import build_pruner
from hpo.samplers import build_sampler
from hpo.search_space import suggest
from tests._helpers.specs import tiny_spec


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


def test_hyperband_defaults_to_epoch_resources() -> None:
    spec = tiny_spec(pruner={"name": "hyperband", "options": {"reduction_factor": 2}})
    pruner = build_pruner(spec)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert pruner._min_resource == spec.training.eval_every
    assert pruner._max_resource == spec.training.epochs


def test_sha_and_none() -> None:
    assert isinstance(
        build_pruner(tiny_spec(pruner={"name": "sha"})), optuna.pruners.SuccessiveHalvingPruner
    )
    assert isinstance(build_pruner(tiny_spec(pruner={"name": "none"})), optuna.pruners.NopPruner)


def test_median_pruner_prunes_on_epoch_steps() -> None:
    spec = tiny_spec(pruner={"name": "median", "options": {"n_startup_trials": 1}})
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
