"""A study's rung plan: the ladder and brackets its ``fidelity:`` section describes.

Every worker and every view builds the same plan from the spec stored with the study; the
arithmetic is :mod:`hpo.search._fidelity`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from hpo.errors import SpecError
from hpo.search._fidelity import Bracket
from hpo.search._fidelity import brackets
from hpo.search._fidelity import rung_epochs
from hpo.spec import StudySpec

DEFAULT_RUNGS = 3
"""Rungs of a ladder whose spec gives neither ``rungs`` nor ``min_epochs``."""


@dataclass(frozen=True)
class RungPlan:
    """The rungs of a fidelity study.

    Attributes:
        kind: ``"sha"`` or ``"hyperband"``.
        eta: The reduction factor.
        ladder: Epochs of each rung, cheapest first; the last is the full schedule.
        brackets: The brackets, most aggressive first (``sha``: one, starting at rung 0).
    """

    kind: str
    eta: int
    ladder: tuple[int, ...]
    brackets: tuple[Bracket, ...]

    @property
    def top(self) -> int:
        """The index of the full-schedule rung."""
        return len(self.ladder) - 1

    def budget_epochs(self, n_trials: int | None) -> int | None:
        """The study's budget in epochs: ``n_trials`` full-schedule trials' worth."""
        return None if n_trials is None else n_trials * self.ladder[-1]


def rung_plan(spec: StudySpec) -> RungPlan | None:
    """The rung plan of ``spec``, or None when ``fidelity.kind`` is ``none``.

    Raises:
        SpecError: The ladder does not fit the schedule (e.g. 4 rungs of eta 3 in 6 epochs).
    """
    fidelity = spec.fidelity
    if not fidelity.enabled:
        return None
    n_rungs = fidelity.rungs
    if n_rungs is None and fidelity.min_epochs is None:
        n_rungs = DEFAULT_RUNGS
    try:
        ladder = rung_epochs(
            spec.training.epochs, fidelity.eta, n_rungs=n_rungs, min_epochs=fidelity.min_epochs
        )
    except ValueError as exc:
        raise SpecError("fidelity", str(exc)) from None
    kind = "hyperband" if fidelity.kind == "hyperband" else "sha"
    plan = brackets(kind, len(ladder), fidelity.eta)
    return RungPlan(kind=kind, eta=fidelity.eta, ladder=ladder, brackets=plan)


__all__ = ["DEFAULT_RUNGS", "RungPlan", "rung_plan"]
