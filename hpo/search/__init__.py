"""The Optuna side of a spec: its sampler, its pruner and its search space as distributions,
and the schedule-compressed successive-halving arithmetic (``_fidelity``, free of Optuna).

Samplers and pruners are not stored in the database, so every worker rebuilds the same ones
from the spec stored with the study.
"""

from __future__ import annotations

from hpo.search._fidelity import Bracket
from hpo.search._fidelity import Schedule
from hpo.search._fidelity import brackets
from hpo.search._fidelity import next_bracket
from hpo.search._fidelity import promotions
from hpo.search._fidelity import rung_epochs
from hpo.search._fidelity import scale_schedule
from hpo.search._pruners import build_pruner
from hpo.search._rung_plan import RungPlan
from hpo.search._rung_plan import rung_plan
from hpo.search._samplers import build_sampler
from hpo.search._space import distribution
from hpo.search._space import distributions
from hpo.search._space import suggest

__all__ = [
    "Bracket",
    "RungPlan",
    "Schedule",
    "brackets",
    "build_pruner",
    "build_sampler",
    "distribution",
    "distributions",
    "next_bracket",
    "promotions",
    "rung_epochs",
    "rung_plan",
    "scale_schedule",
    "suggest",
]
