"""Optuna pruners built from a study spec; every worker builds the same one.

The options, with their schedule-derived defaults, come from :func:`hpo.spec.pruner_options`
(its module explains the rule). Steps are epochs.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import optuna

from hpo.errors import SpecError
from hpo.search._rung_plan import rung_plan
from hpo.spec import pruner_options

if TYPE_CHECKING:
    from hpo.spec import StudySpec


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The pruner described by ``spec.pruner``, with schedule-derived defaults (steps are epochs).

    Args:
        spec: The study spec.

    Returns:
        A new pruner instance; ``NopPruner`` for a study with ``fidelity:`` (its rungs replace
        the pruner; the spec's pruner is then ``none``).

    Raises:
        SpecError: The options are invalid, e.g. ``min_resource > max_resource``, or the
            ``fidelity:`` ladder does not fit the schedule.
    """
    if rung_plan(spec) is not None:
        return optuna.pruners.NopPruner()
    try:
        options = pruner_options(spec)
    except ValueError as exc:
        raise SpecError("pruner.options", str(exc)) from None
    pruners = optuna.pruners
    name = spec.pruner.name
    if name == "none":
        return pruners.NopPruner()
    if name == "median":
        patience = options.pop("patience")
        median = pruners.MedianPruner(**options)
        if not patience:
            return median
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return pruners.PatientPruner(median, patience=patience)
    if name == "sha":
        return pruners.SuccessiveHalvingPruner(**options)
    return pruners.HyperbandPruner(**options)


__all__ = ["build_pruner"]
