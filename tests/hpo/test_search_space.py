"""Search space -> Optuna distributions, and suggest() through the public trial API."""

from __future__ import annotations

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from hpo.search import distributions
from hpo.search import suggest
from hpo.spec import to_train_config
from tests._helpers.specs import SEVEN_PARAMS
from tests._helpers.specs import tiny_spec

_SPACE = {
    **SEVEN_PARAMS,
    "lr": {"type": "float", "low": 1e-4, "high": 1e-3, "step": 1e-4},
    "seq_len": {"type": "int", "low": 2, "high": 8, "step": 2},
    "num_instances": {"type": "int", "low": 2, "high": 4, "step": 2},
    "model.attention": {"type": "categorical", "choices": ["pooled", "full_map"]},
}


def test_distributions_map_every_entry() -> None:
    dists = distributions(tiny_spec(search_space=_SPACE))
    assert list(dists) == list(_SPACE)
    assert dists["margin"] == FloatDistribution(1e-6, 1.0, log=True)
    assert dists["lr"] == FloatDistribution(1e-4, 1e-3, step=1e-4)
    assert dists["seq_len"] == IntDistribution(2, 8, step=2)
    assert dists["model.attention"] == CategoricalDistribution(("pooled", "full_map"))


def test_suggest_draws_values_inside_the_space() -> None:
    spec = tiny_spec(search_space=_SPACE)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        params = suggest(trial, spec)
        assert params == trial.params
        assert 0.1 <= params["sigma"] <= 1.0
        assert params["seq_len"] in (2, 4, 6, 8)
        assert params["model.attention"] in ("pooled", "full_map")
        cfg = to_train_config(spec, params, trial_number=trial.number, output_dir="o")
        assert cfg.data.seq_len == params["seq_len"]
        assert cfg.model.attention == params["model.attention"]
        study.tell(trial, 0.5)


def test_suggest_matches_the_distributions() -> None:
    spec = tiny_spec(search_space=_SPACE)
    study = optuna.create_study()
    trial = study.ask()
    suggest(trial, spec)
    assert study.trials[0].distributions == distributions(spec)


def test_enqueued_params_come_back_unchanged() -> None:
    spec = tiny_spec()
    study = optuna.create_study()
    fixed = {
        "sigma": 0.5,
        "alpha": 1.0,
        "l": 0.5,
        "margin": 0.1,
        "beta": 0.2,
        "gamma": 0.1,
        "weight_decay": 0.01,
    }
    study.enqueue_trial(fixed)
    assert suggest(study.ask(), spec) == fixed
