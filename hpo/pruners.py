"""Optuna pruners built from a study spec; every worker builds the same one.

**Pruner steps are epochs**: a trial reports its validation metric at the 0-based index of each
evaluated epoch (with ``eval_every: 10`` and 121 epochs: steps 9, 19, ..., 119, 120), so every
step-valued option (``n_warmup_steps``, ``interval_steps``, ``min_resource``,
``max_resource``) counts epochs.

- ``median``: ``MedianPruner(n_startup_trials, n_warmup_steps, interval_steps, n_min_trials)``;
  compares with COMPLETE trials at the same step.
- ``hyperband``: ``HyperbandPruner(min_resource, max_resource, reduction_factor,
  bootstrap_count)``; ``min_resource`` defaults to ``training.eval_every`` and
  ``max_resource`` to ``training.epochs``.
- ``sha``: ``SuccessiveHalvingPruner(min_resource, reduction_factor, min_early_stopping_rate,
  bootstrap_count)``; ``min_resource`` defaults to ``training.eval_every``.
- ``none``: ``NopPruner()``: every trial runs all its epochs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

import optuna

from hpo.errors import SpecError
from hpo.samplers import check_options

if TYPE_CHECKING:
    from hpo.spec import StudySpec

_INT_GE0 = (int, 0)
_INT_GE1 = (int, 1)
_INT_GE2 = (int, 2)

PRUNER_OPTIONS: dict[str, dict[str, tuple[type, Any]]] = {
    "median": {
        "n_startup_trials": _INT_GE0,
        "n_warmup_steps": _INT_GE0,
        "interval_steps": _INT_GE1,
        "n_min_trials": _INT_GE1,
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


def check_pruner_options(name: str, options: dict[str, Any]) -> None:
    """Validate ``pruner.options`` for pruner ``name`` (raises ``ValueError``)."""
    check_options("pruner", name, options, PRUNER_OPTIONS[name])


def build_pruner(spec: StudySpec) -> optuna.pruners.BasePruner:
    """The pruner described by ``spec.pruner`` (steps are 0-based epoch indices).

    Args:
        spec: The study spec.

    Returns:
        A new pruner instance.

    Raises:
        SpecError: The options are invalid, e.g. ``min_resource > max_resource``.
    """
    cfg = spec.pruner
    options = dict(cfg.options)
    try:
        check_pruner_options(cfg.name, options)
    except ValueError as exc:
        raise SpecError("pruner.options", str(exc)) from None
    pruners = optuna.pruners
    if cfg.name == "median":
        return pruners.MedianPruner(**options)
    if cfg.name == "none":
        return pruners.NopPruner()
    options.setdefault("min_resource", spec.training.eval_every)
    if cfg.name == "sha":
        return pruners.SuccessiveHalvingPruner(**options)
    options.setdefault("max_resource", spec.training.epochs)
    if options["min_resource"] > options["max_resource"]:
        raise SpecError(
            "pruner.options",
            f"min_resource={options['min_resource']} must be <= "
            f"max_resource={options['max_resource']} (epochs)",
        )
    return pruners.HyperbandPruner(**options)


__all__ = ["PRUNER_OPTIONS", "build_pruner", "check_pruner_options"]
