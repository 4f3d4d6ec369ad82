"""The pruner settings a spec implies: schedule-derived defaults (steps are epochs).

**Pruner steps are epochs**: a trial reports its validation metric at the 0-based index of each
evaluated epoch (with ``eval_every: 10`` and 121 epochs: steps 9, 19, ..., 119, 120), so every
step-valued option (``n_warmup_steps``, ``interval_steps``, ``min_resource``,
``max_resource``) counts epochs.

**Defaults come from the training schedule, not from Optuna.** A pruner compares trials at the
same step, which is only meaningful once the learning-rate schedule can no longer reorder the
curves. During the linear warm-up every trial runs at a small, rising rate, and each LR
milestone multiplies the rate by ``gamma``: a trial that looks poor at a high rate can overtake
the others once the rate drops (measured on our trainer with the demo schedule, BENCHMARKS.md
"Search efficiency": the rank correlation of epoch-k validation mAP with the final one is
0.07-0.69 before the step at epoch 4, 0.79 at it). The only phase in which the rate no longer
changes is the last one, so the **first comparable step** is the first epoch trained at the
schedule's final rate:
``max(warmup_epochs, last milestone < epochs)`` (:func:`first_comparable_step`; the largest
``warmup_epochs`` the search can draw when it is searched). Options a spec leaves out default to:

- ``median``: ``MedianPruner(n_startup_trials=5, n_warmup_steps=<first comparable step>,
  interval_steps=1, n_min_trials=1)``: a trial is first compared after one epoch at the final
  rate, and only once 5 trials have completed (a median of fewer is noise). ``patience: p``
  (default 0: off) wraps it in ``PatientPruner(..., patience=p)``: the median rule then
  applies only to a trial whose last ``p`` + 1 evaluations are all below its best earlier one.
- ``hyperband``: ``HyperbandPruner(min_resource, max_resource, reduction_factor,
  bootstrap_count)``; ``max_resource`` defaults to ``training.epochs`` and ``min_resource`` to
  ``max(eval_every, first comparable step)``, capped at ``max_resource``.
- ``sha``: ``SuccessiveHalvingPruner(min_resource, reduction_factor, min_early_stopping_rate,
  bootstrap_count)``; ``min_resource`` as for ``hyperband``, capped at ``training.epochs``.
- ``none``: ``NopPruner()``: every trial runs all its epochs.

Examples: the demo schedule (6 epochs, warm-up 1, milestone 4) gives first comparable step 4, so
a pruned trial stops after 5 of its 6 epochs at best; the MARS recipe (121 epochs, warm-up 10,
milestones 40 and 70, evaluated every 10) gives 70, so the first comparison is at the evaluation
of epoch index 79 and a pruned trial saves at most 41 of its 121 epochs. Explicit options always
win; the shipped studies leave them to these defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from typing import Protocol

from hpo.spec._options import check_pruner_options
from hpo.spec._paths import TRAINING_PATHS
from hpo.spec._paths import resolve_param_path


class ScheduledSpec(Protocol):
    """What the schedule rules read of a :class:`~hpo.spec.StudySpec` (the schema imports
    this module, so it is not imported back)."""

    @property
    def training(self) -> Any: ...

    @property
    def search_space(self) -> Mapping[str, Any]: ...

    @property
    def pruner(self) -> Any: ...


def first_comparable_step(spec: ScheduledSpec) -> int:
    """The first epoch trained at the schedule's final learning rate (see the module docstring).

    Args:
        spec: The study spec; its ``training`` section, and the largest ``warmup_epochs`` the
            search space can draw if it searches it.

    Returns:
        ``max(warmup_epochs, last milestone < epochs)``, a 0-based epoch index.

    Example:
        >>> from hpo.spec import TrainingSpec
        >>> from types import SimpleNamespace
        >>> recipe = TrainingSpec(epochs=121, warmup_epochs=10, milestones=[40, 70])
        >>> first_comparable_step(SimpleNamespace(training=recipe, search_space={}))
        70
    """
    training = spec.training
    warmup = training.warmup_epochs
    path = TRAINING_PATHS["warmup_epochs"]
    for name, param in spec.search_space.items():
        if resolve_param_path(name) == path:
            warmup = param.high if param.type == "int" else max(map(int, param.choices))
    decays = [m for m in training.milestones if m < training.epochs]
    return max([warmup, *decays])


def pruner_options(spec: ScheduledSpec) -> dict[str, Any]:
    """The constructor options of ``spec.pruner`` with the schedule-derived defaults filled in.

    Args:
        spec: The study spec.

    Returns:
        The options by name; for ``median`` also ``patience`` (0: no PatientPruner).

    Raises:
        ValueError: The options are invalid, e.g. ``min_resource > max_resource``.
    """
    name = spec.pruner.name
    options = dict(spec.pruner.options)
    check_pruner_options(name, options)
    if name == "none":
        return options
    comparable = first_comparable_step(spec)
    if name == "median":
        options.setdefault("patience", 0)
        options.setdefault("n_startup_trials", 5)
        options.setdefault("n_warmup_steps", comparable)
        return options
    epochs = spec.training.epochs
    max_resource = options.get("max_resource", epochs) if name == "hyperband" else epochs
    options.setdefault("min_resource", min(max(spec.training.eval_every, comparable), max_resource))
    if name == "sha":
        return options
    options.setdefault("max_resource", epochs)
    if options["min_resource"] > options["max_resource"]:
        raise ValueError(
            f"min_resource={options['min_resource']} must be <= "
            f"max_resource={options['max_resource']} (epochs)"
        )
    return options


__all__ = ["first_comparable_step", "pruner_options"]
