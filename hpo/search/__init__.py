"""The Optuna side of a spec: its sampler, its pruner and its search space as distributions.

Samplers and pruners are not stored in the database, so every worker rebuilds the same ones
from the spec stored with the study.
"""

from __future__ import annotations

from hpo.search._pruners import build_pruner
from hpo.search._samplers import build_sampler
from hpo.search._space import distribution
from hpo.search._space import distributions
from hpo.search._space import suggest

__all__ = ["build_pruner", "build_sampler", "distribution", "distributions", "suggest"]
