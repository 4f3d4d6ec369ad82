"""The study's search space as Optuna distributions, and sampling it for one trial.

Each ``search_space`` entry of the spec becomes one Optuna distribution of the same name
(``float`` -> :class:`~optuna.distributions.FloatDistribution`, ``int`` ->
:class:`~optuna.distributions.IntDistribution`, ``categorical`` ->
:class:`~optuna.distributions.CategoricalDistribution`); :func:`suggest` draws them through
the public ``trial.suggest_*`` API, so a retried trial gets back its original values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from hpo.spec import CategoricalParam
from hpo.spec import FloatParam
from hpo.spec import IntParam
from hpo.spec import StudySpec

if TYPE_CHECKING:
    import optuna


def distribution(param: FloatParam | IntParam | CategoricalParam) -> BaseDistribution:
    """The Optuna distribution of one search-space entry.

    Example:
        >>> from hpo.spec import FloatParam
        >>> distribution(FloatParam(type="float", low=1e-6, high=1.0, log=True))
        FloatDistribution(high=1.0, log=True, low=1e-06, step=None)
    """
    if isinstance(param, FloatParam):
        return FloatDistribution(param.low, param.high, log=param.log, step=param.step)
    if isinstance(param, IntParam):
        return IntDistribution(param.low, param.high, log=param.log, step=param.step)
    return CategoricalDistribution(tuple(param.choices))


def distributions(spec: StudySpec) -> dict[str, BaseDistribution]:
    """Every search-space entry of ``spec`` as an Optuna distribution, in spec order."""
    return {name: distribution(param) for name, param in spec.search_space.items()}


def suggest(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Draw every search-space parameter for ``trial`` (``trial.suggest_*``).

    Args:
        trial: The live trial.
        spec: The study spec.

    Returns:
        Parameter values by search-space name (the same dict as ``trial.params``); map them
        onto a training config with :func:`hpo.spec.to_train_config`.
    """
    values: dict[str, Any] = {}
    for name, param in spec.search_space.items():
        if isinstance(param, FloatParam):
            values[name] = trial.suggest_float(
                name, param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, IntParam):
            values[name] = trial.suggest_int(
                name, param.low, param.high, log=param.log, step=param.step
            )
        else:
            values[name] = trial.suggest_categorical(name, list(param.choices))
    return values


__all__ = ["distribution", "distributions", "suggest"]
