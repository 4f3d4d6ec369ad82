"""Optuna samplers built from a study spec; every worker builds the same one.

Samplers are not stored in the database, so each worker rebuilds its sampler from the spec
stored with the study. Names and defaults:

- ``tpe``: ``TPESampler(seed, multivariate=True, constant_liar=True)``; constant liar makes
  concurrent workers treat RUNNING trials as pending, so they do not all probe the same spot.
- ``random``: ``RandomSampler(seed)``.
- ``gp``: ``GPSampler(seed)`` (Gaussian process; needs scipy and torch).
- ``cmaes``: ``CmaEsSampler(seed)`` (needs ``cmaes``; categorical parameters fall back to
  independent sampling).
- ``qmc``: ``QMCSampler(seed)`` (Sobol by default; the sequence is shared through the storage).

``options`` are passed through to the constructor; only the listed ones are accepted.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING
from typing import Any

import optuna

from hpo.errors import SpecError

if TYPE_CHECKING:
    from hpo.spec import StudySpec

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

# Samplers whose seed must be identical in every worker (the QMC sequence is shared).
_SHARED_SEED = ("qmc",)


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


def build_sampler(spec: StudySpec, *, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    """The sampler described by ``spec.sampler``.

    Args:
        spec: The study spec.
        seed_offset: Added to the seed (except for ``qmc``, whose seed must be shared).
            Several workers with the very same seed propose the same first random points, so
            a worker may pass e.g. its index; 0 reproduces a single-worker study exactly.

    Returns:
        A new sampler instance.

    Raises:
        SpecError: The options are invalid for this sampler.
    """
    cfg = spec.sampler
    try:
        check_sampler_options(cfg.name, cfg.options)
    except ValueError as exc:
        raise SpecError("sampler.options", str(exc)) from None
    seed = cfg.seed
    if seed is not None and cfg.name not in _SHARED_SEED:
        seed += seed_offset
    options = dict(cfg.options)
    samplers = optuna.samplers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if cfg.name == "tpe":
            options.setdefault("multivariate", True)
            options.setdefault("constant_liar", True)
            return samplers.TPESampler(seed=seed, **options)
        if cfg.name == "random":
            return samplers.RandomSampler(seed=seed)
        if cfg.name == "gp":
            return samplers.GPSampler(seed=seed, **options)
        if cfg.name == "cmaes":
            return samplers.CmaEsSampler(seed=seed, **options)
        return samplers.QMCSampler(seed=seed, **options)


__all__ = ["SAMPLER_OPTIONS", "build_sampler", "check_sampler_options"]
