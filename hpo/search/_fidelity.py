"""Successive halving over compressed schedules: the ladder, the brackets and the promotion rule.

Pure arithmetic (no torch, no Optuna), shared by the service and the search benchmark's replay.

**A rung is a compressed schedule**: the same recipe with its epochs, warm-up, milestones and
evaluation period scaled by ``rung epochs / full epochs`` (as NATS-Bench's 12-epoch proxy for its
200-epoch schedule), never a truncated full run: comparing trials before the last LR step
compares them at a high rate, which does not predict the final ranking.

**Ladder** (:func:`rung_epochs`): with ``n`` rungs and reduction factor ``eta`` the rung epochs
are ``round(E / eta**(n - 1 - k))`` for ``k = 0 .. n - 1``; the top rung is the full schedule.
The MARS recipe (121 epochs) with ``eta = 3`` and 3 rungs gives 13, 40, 121; a 24-epoch schedule
gives 3, 8, 24.

**Rounding rule**: every scaled count is ``x * e / E`` rounded half up to an integer (exact
integer arithmetic, no float ties). Warm-up is capped at the rung's epochs; a milestone is at
least 1 and one more than the milestone before it (so two never merge), and a milestone that lands
on or past the rung's last epoch is dropped (that rung never reaches it, like a milestone past
the end of the full schedule); the evaluation period is at least 1.

**Promotion** (:func:`promotions`, asynchronous successive halving, Li et al. 2020, "ASHA"): a
configuration completed at rung ``r`` is promoted to rung ``r + 1`` once it is among the best
``floor(n / eta)`` of the ``n`` results completed at rung ``r`` so far (within its bracket) and
was not promoted before. Nobody waits for a rung to fill: when nothing is promotable, a worker
starts a new configuration at its bracket's bottom rung.

**Brackets** (:func:`brackets`, :func:`next_bracket`): ``sha`` is one bracket starting at rung 0;
``hyperband`` runs one bracket per starting rung, bracket ``b`` (bottom rung ``b``) receiving
``ceil(n * eta**s / (s + 1))`` of each round's new configurations with ``s = n - 1 - b`` (Li et
al. 2018), interleaved so that every bracket progresses from the start.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from collections.abc import Hashable
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal
from typing import TypeVar

Key = TypeVar("Key", bound=Hashable)


def _round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up, in exact integer arithmetic."""
    return (2 * numerator + denominator) // (2 * denominator)


def rung_epochs(
    epochs: int, eta: int, *, n_rungs: int | None = None, min_epochs: int | None = None
) -> tuple[int, ...]:
    """The epochs of each rung, cheapest first; the last is ``epochs`` (the full schedule).

    Args:
        epochs: The full schedule's epochs ``E``.
        eta: The reduction factor (>= 2).
        n_rungs: The number of rungs; or
        min_epochs: the bottom rung's least epochs: as many rungs as keep the bottom rung's
            rounded epochs ``>= min_epochs``. Exactly one of the two is given.

    Returns:
        ``round(E / eta**(n - 1 - k))`` for ``k = 0 .. n - 1``, strictly increasing.

    Raises:
        ValueError: ``eta < 2``, neither or both of ``n_rungs``/``min_epochs``, or a ladder
            whose rungs would round to fewer than 1 epoch or to equal epochs.

    Example:
        >>> rung_epochs(121, 3, n_rungs=3)
        (13, 40, 121)
        >>> rung_epochs(24, 3, min_epochs=3)
        (3, 8, 24)
    """
    if eta < 2:
        raise ValueError(f"eta={eta} must be >= 2")
    if (n_rungs is None) == (min_epochs is None):
        raise ValueError("give exactly one of n_rungs and min_epochs")
    if min_epochs is not None:
        if not 1 <= min_epochs <= epochs:
            raise ValueError(f"min_epochs={min_epochs} must be in [1, epochs={epochs}]")
        n_rungs = 1
        while _round_half_up(epochs, eta**n_rungs) >= min_epochs:
            n_rungs += 1
    elif n_rungs < 1:
        raise ValueError(f"n_rungs={n_rungs} must be >= 1")
    ladder = tuple(_round_half_up(epochs, eta ** (n_rungs - 1 - k)) for k in range(n_rungs))
    if ladder[0] < 1 or len(set(ladder)) < n_rungs:
        raise ValueError(
            f"{n_rungs} rungs with eta={eta} do not fit {epochs} epochs (rungs {list(ladder)})"
        )
    return ladder


@dataclass(frozen=True)
class Schedule:
    """The schedule part of a training recipe (all counts in epochs; milestones 0-based)."""

    epochs: int
    warmup_epochs: int
    milestones: tuple[int, ...]
    eval_every: int


def scale_schedule(full: Schedule, epochs: int) -> Schedule:
    """``full`` compressed (or kept) to ``epochs`` by the rounding rule of the module docstring.

    Args:
        full: The full schedule.
        epochs: The rung's epochs, ``1 <= epochs <= full.epochs``.

    Returns:
        The compressed schedule; ``full`` itself when ``epochs == full.epochs``.

    Raises:
        ValueError: ``epochs`` is outside ``[1, full.epochs]``.

    Example:
        >>> scale_schedule(Schedule(121, 10, (40, 70), 10), 13)
        Schedule(epochs=13, warmup_epochs=1, milestones=(4, 8), eval_every=1)
    """
    total = full.epochs
    if not 1 <= epochs <= total:
        raise ValueError(f"rung epochs={epochs} must be in [1, {total}]")
    if epochs == total:
        return full
    milestones: list[int] = []
    for milestone in full.milestones:
        floor = milestones[-1] + 1 if milestones else 1
        scaled = max(_round_half_up(milestone * epochs, total), floor)
        if scaled >= epochs:
            break
        milestones.append(scaled)
    return Schedule(
        epochs=epochs,
        warmup_epochs=min(_round_half_up(full.warmup_epochs * epochs, total), epochs),
        milestones=tuple(milestones),
        eval_every=max(_round_half_up(full.eval_every * epochs, total), 1),
    )


@dataclass(frozen=True)
class Bracket:
    """One successive-halving bracket: its bottom rung and its share of new configurations."""

    bottom: int
    """Index (into the ladder) of the rung where its configurations start."""
    share: int
    """New configurations it receives per Hyperband round."""


def brackets(kind: Literal["sha", "hyperband"], n_rungs: int, eta: int) -> tuple[Bracket, ...]:
    """The brackets of ``kind`` over a ladder of ``n_rungs`` rungs, most aggressive first.

    Example:
        >>> brackets("hyperband", 3, 3)
        (Bracket(bottom=0, share=9), Bracket(bottom=1, share=5), Bracket(bottom=2, share=3))
        >>> brackets("sha", 3, 3)
        (Bracket(bottom=0, share=1),)
    """
    if kind == "sha":
        return (Bracket(bottom=0, share=1),)
    top = n_rungs - 1
    return tuple(
        Bracket(bottom=b, share=math.ceil(n_rungs * eta ** (top - b) / (top - b + 1)))
        for b in range(n_rungs)
    )


def next_bracket(started: Sequence[int], plan: Sequence[Bracket]) -> int:
    """The bracket (index into ``plan``) of the next new configuration.

    Args:
        started: How many configurations each bracket of ``plan`` has started so far.
        plan: The brackets (:func:`brackets`).

    Returns:
        The bracket furthest behind its share (smallest ``(started + 1) / share``), the most
        aggressive on ties: stateless, so every worker computes it from the study's trials.

    Example:
        >>> plan = brackets("hyperband", 3, 3)
        >>> order, started = [], [0, 0, 0]
        >>> for _ in range(17):
        ...     b = next_bracket(started, plan); started[b] += 1; order.append(b)
        >>> started, order[:6]
        ([9, 5, 3], [0, 1, 0, 0, 2, 1])
    """
    if len(started) != len(plan):
        raise ValueError(f"{len(started)} counts for {len(plan)} brackets")
    return min(range(len(plan)), key=lambda i: ((started[i] + 1) / plan[i].share, i))


def promotions(
    results: Mapping[Key, float],
    promoted: Collection[Key],
    eta: int,
    *,
    direction: Literal["maximize", "minimize"] = "maximize",
) -> list[Key]:
    """The configurations to promote now from one rung of one bracket (ASHA's rule).

    Call it whenever a result arrives at the rung; it also returns an older configuration that
    entered the top ``floor(n / eta)`` because ``n`` grew.

    Args:
        results: The objective of every configuration completed at this rung so far, by
            configuration id, in completion order (ties go to the earlier one). A NaN ranks last.
        promoted: The ids already promoted from this rung.
        eta: The reduction factor.
        direction: Whether larger objectives are better.

    Returns:
        The ids in the best ``floor(len(results) / eta)`` not in ``promoted``, best first.

    Example:
        >>> promotions({"a": 0.5, "b": 0.7, "c": 0.6}, promoted=[], eta=3)
        ['b']
        >>> promotions({"a": 0.5, "b": 0.7, "c": 0.6}, promoted=["b"], eta=3)
        []
        >>> promotions({"a": 0.5, "b": 0.7, "c": 0.6, "d": 0.1, "e": 0.2, "f": 0.3},
        ...            promoted=["b"], eta=3)
        ['c']
    """
    sign = -1.0 if direction == "maximize" else 1.0

    def rank(key: Key) -> float:
        value = results[key]
        return math.inf if math.isnan(value) else sign * value

    best = sorted(results, key=rank)[: len(results) // eta]
    done = set(promoted)
    return [key for key in best if key not in done]


__all__ = [
    "Bracket",
    "Schedule",
    "brackets",
    "next_bracket",
    "promotions",
    "rung_epochs",
    "scale_schedule",
]
