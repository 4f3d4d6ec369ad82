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

``options`` are passed through to the constructor; :data:`hpo.spec.SAMPLER_OPTIONS` lists
those accepted.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import optuna

from hpo.errors import SpecError
from hpo.spec import check_sampler_options

if TYPE_CHECKING:
    from hpo.spec import StudySpec

# Samplers whose seed must be identical in every worker (the QMC sequence is shared).
_SHARED_SEED = ("qmc",)


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


__all__ = ["build_sampler"]
