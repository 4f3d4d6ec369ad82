"""The options each sampler and pruner accepts, checked when a spec is validated.

``sampler.options`` and ``pruner.options`` are passed to the Optuna constructors; only the
options listed here are accepted, with their type and range. The tables need no Optuna import,
so validating a spec stays cheap.
"""

from __future__ import annotations

from typing import Any

# option -> (type, minimum or allowed values); bool options take True/False only.
_INT_GE0 = (int, 0)
_INT_GE1 = (int, 1)
_BOOL = (bool, None)

SAMPLER_OPTIONS: dict[str, dict[str, tuple[type, Any]]] = {
    "tpe": {
        "n_startup_trials": _INT_GE0,
        "n_ei_candidates": _INT_GE1,
        "multivariate": _BOOL,
        "group": _BOOL,
        "constant_liar": _BOOL,
        "warn_independent_sampling": _BOOL,
    },
    "random": {},
    "gp": {
        "n_startup_trials": _INT_GE0,
        "deterministic_objective": _BOOL,
        "warn_independent_sampling": _BOOL,
    },
    "cmaes": {
        "n_startup_trials": _INT_GE0,
        "warn_independent_sampling": _BOOL,
        "consider_pruned_trials": _BOOL,
        "popsize": _INT_GE1,
        "use_separable_cma": _BOOL,
        "with_margin": _BOOL,
        "lr_adapt": _BOOL,
    },
    "qmc": {
        "qmc_type": (str, ("sobol", "halton")),
        "scramble": _BOOL,
        "warn_asynchronous_seeding": _BOOL,
        "warn_independent_sampling": _BOOL,
    },
}

_INT_GE2 = (int, 2)

PRUNER_OPTIONS: dict[str, dict[str, tuple[type, Any]]] = {
    "median": {
        "n_startup_trials": _INT_GE0,
        "n_warmup_steps": _INT_GE0,
        "interval_steps": _INT_GE1,
        "n_min_trials": _INT_GE1,
        "patience": _INT_GE0,
    },
    "hyperband": {
        "min_resource": _INT_GE1,
        "max_resource": _INT_GE1,
        "reduction_factor": _INT_GE2,
        "bootstrap_count": _INT_GE0,
    },
    "sha": {
        "min_resource": _INT_GE1,
        "reduction_factor": _INT_GE2,
        "min_early_stopping_rate": _INT_GE0,
        "bootstrap_count": _INT_GE0,
    },
    "none": {},
}


def check_options(
    kind: str, name: str, options: dict[str, Any], table: dict[str, tuple[type, Any]]
) -> None:
    """Refuse unknown options and values of the wrong type or range.

    Raises:
        ValueError: With a one-line reason (pydantic turns it into a field error).
    """
    for key, value in options.items():
        if key not in table:
            allowed = ", ".join(sorted(table)) or "none"
            raise ValueError(f"unknown option {key!r} for {kind} {name!r}; allowed: {allowed}")
        expected, bound = table[key]
        if expected is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"option {key}={value!r} must be an integer")
            if value < bound:
                raise ValueError(f"option {key}={value} must be >= {bound}")
        elif expected is bool:
            if not isinstance(value, bool):
                raise ValueError(f"option {key}={value!r} must be true or false")
        elif value not in bound:
            raise ValueError(f"option {key}={value!r} must be one of {list(bound)}")


def check_sampler_options(name: str, options: dict[str, Any]) -> None:
    """Validate ``sampler.options`` for sampler ``name`` (raises ``ValueError``)."""
    check_options("sampler", name, options, SAMPLER_OPTIONS[name])


def check_pruner_options(name: str, options: dict[str, Any]) -> None:
    """Validate ``pruner.options`` for pruner ``name`` (raises ``ValueError``)."""
    check_options("pruner", name, options, PRUNER_OPTIONS[name])


__all__ = [
    "PRUNER_OPTIONS",
    "SAMPLER_OPTIONS",
    "check_options",
    "check_pruner_options",
    "check_sampler_options",
]
