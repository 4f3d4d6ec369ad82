"""The worker's side of a ``fidelity:`` study: placing new trials, promotions, the epoch budget.

Everything here runs under the study lock of a budget check (:mod:`hpo.worker._loop`), so two
workers never decide from the same view:

1. **Promotions** (:func:`enqueue_promotions`): for every rung of every bracket, the
   configurations that :func:`hpo.search.promotions` (ASHA's rule) promotes and that have no
   trial at the next rung yet are enqueued (``study.enqueue_trial``: same params, seed and
   configuration id, the next rung's ``fidelity`` attribute), highest rung first, each only
   while it fits the epoch budget. A configuration is promoted from a rung exactly once: a
   trial at the next rung, in any state, marks it promoted; a killed rung trial is retried by
   the heartbeat watchdog like any trial and its promotion is decided when its retry completes.
2. **The budget in epochs** (:func:`decide_epochs`): ``budget.n_trials`` full-schedule trials'
   worth of epochs; a trial counts with its rung's epochs. WAITING trials (promotions and
   retries) were budgeted when they were queued and are taken first; a new configuration is
   started only while finished + pending + its epochs stay within the budget.
3. **New configurations** (:func:`place_new_trial`): a trial the sampler proposes gets the
   bottom rung of the bracket :func:`hpo.search.next_bracket` picks, before the lock is
   released. No worker ever waits for a rung to fill.

A promoted trial trains its longer compressed schedule **from scratch** in its own folder:
two compressed schedules with scaled warm-up and milestones do not share an exact prefix (the
learning rate differs from the first milestone on), so resuming the lower rung's checkpoint
would not be the recipe. Only a retry of the same rung trial resumes from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from hpo.search import RungPlan
from hpo.search import Schedule
from hpo.search import next_bracket
from hpo.search import promotions
from hpo.search import scale_schedule
from hpo.study.records import Rung
from hpo.study.records import TrialAttr
from hpo.study.records import rung_of
from hpo.worker._budget import Decision
from reid_core.config import TrainConfig

logger = logging.getLogger(__name__)

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_INHERITED = (TrialAttr.SEED, TrialAttr.WARM_START)
"""User attributes a promoted trial takes from the rung trial it promotes."""


@dataclass(frozen=True)
class EpochCounts:
    """Epochs of a fidelity study's trials by state, as seen at one budget check."""

    finished: int = 0
    running: int = 0
    waiting: int = 0
    waiting_trials: int = 0

    @classmethod
    def of(cls, trials: list[FrozenTrial], plan: RungPlan) -> EpochCounts:
        """Count ``trials``: each with its rung's epochs; a WAITING trial not placed yet (a
        warm-start configuration) with the most a bottom rung can cost."""
        widest = max(plan.ladder[b.bottom] for b in plan.brackets)
        totals: dict[TrialState, int] = defaultdict(int)
        for trial in trials:
            rung = rung_of(trial)
            totals[trial.state] += rung.epochs if rung is not None else widest
        waiting = sum(1 for t in trials if t.state is TrialState.WAITING)
        return cls(
            finished=totals[TrialState.COMPLETE] + totals[TrialState.PRUNED],
            running=totals[TrialState.RUNNING],
            waiting=totals[TrialState.WAITING],
            waiting_trials=waiting,
        )

    @property
    def committed(self) -> int:
        """Epochs finished or pending."""
        return self.finished + self.running + self.waiting


def decide_epochs(
    counts: EpochCounts,
    *,
    budget: int | None,
    next_epochs: int,
    elapsed_s: float,
    timeout_s: float | None,
) -> Decision:
    """:func:`hpo.worker._budget.decide` for a fidelity study: the budget counts epochs.

    Args:
        counts: The study's epochs by state.
        budget: The budget in epochs (None: only a time budget).
        next_epochs: The epochs of the next new configuration's bottom rung.
        elapsed_s: Seconds since the study started.
        timeout_s: The study's time budget in seconds, or None.

    Returns:
        TAKE a WAITING trial (budgeted when queued) or a new configuration that fits; WAIT
        while other workers' trials may still free a promotion; DONE when nothing more fits.

    Example:
        >>> counts = EpochCounts(finished=30, running=8)
        >>> decide_epochs(counts, budget=48, next_epochs=3, elapsed_s=0, timeout_s=None)
        <Decision.TAKE: 'take'>
        >>> decide_epochs(counts, budget=40, next_epochs=3, elapsed_s=0, timeout_s=None)
        <Decision.WAIT: 'wait'>
    """
    if timeout_s is not None and elapsed_s >= timeout_s:
        return Decision.TIMEOUT
    if budget is None:
        return Decision.TAKE
    if counts.finished >= budget:
        return Decision.DONE
    if counts.waiting_trials or counts.committed + next_epochs <= budget:
        return Decision.TAKE
    return Decision.WAIT if counts.running else Decision.DONE


def next_bracket_index(trials: list[FrozenTrial], plan: RungPlan) -> int:
    """The bracket of the next new configuration, from the configurations placed so far."""
    configs: list[set[int]] = [set() for _ in plan.brackets]
    for trial in trials:
        rung = rung_of(trial)
        if rung is not None:
            configs[rung.bracket].add(rung.config)
    return next_bracket([len(c) for c in configs], plan.brackets)


def place_new_trial(trial: optuna.Trial, plan: RungPlan) -> Rung:
    """The trial's rung: the one it carries (a promotion or a retry), else the bottom rung of
    the next bracket, recorded as its ``fidelity`` attribute (call it under the study lock)."""
    rung = rung_of(trial)
    if rung is not None:
        return rung
    trials = trial.study.get_trials(deepcopy=False)
    bracket = next_bracket_index(trials, plan)
    bottom = plan.brackets[bracket].bottom
    origin = trial.user_attrs.get(TrialAttr.ORIGIN_TRIAL, trial.number)
    rung = Rung(
        config=int(origin),
        bracket=bracket,
        rung=bottom,
        epochs=plan.ladder[bottom],
        top=bottom == plan.top,
    )
    trial.set_user_attr(TrialAttr.FIDELITY, rung.to_attr())
    return rung


def next_epochs(trials: list[FrozenTrial], plan: RungPlan) -> int:
    """The epochs of the next new configuration's bottom rung."""
    return plan.ladder[plan.brackets[next_bracket_index(trials, plan)].bottom]


def enqueue_promotions(
    study: optuna.Study,
    plan: RungPlan,
    *,
    budget: int | None,
    direction: Literal["maximize", "minimize"],
) -> list[Rung]:
    """Enqueue every promotion due now (see the module docstring); call under the study lock.

    Args:
        study: The study.
        plan: Its rung plan.
        budget: The budget in epochs (None: no epoch budget).
        direction: ``"maximize"`` or ``"minimize"``.

    Returns:
        The rungs of the enqueued trials, in enqueue order.
    """
    trials = study.get_trials(deepcopy=False)
    results: dict[tuple[int, int], dict[int, float]] = defaultdict(dict)
    sources: dict[tuple[int, int], FrozenTrial] = {}
    placed: set[tuple[int, int, int]] = set()
    for trial in sorted(trials, key=_completion_order):
        rung = rung_of(trial)
        if rung is None:
            continue
        placed.add((rung.bracket, rung.rung, rung.config))
        if trial.state is TrialState.COMPLETE and trial.value is not None:
            results[(rung.bracket, rung.rung)].setdefault(rung.config, trial.value)
            sources.setdefault((rung.config, rung.rung), trial)
    committed = EpochCounts.of(trials, plan).committed
    enqueued: list[Rung] = []
    for level in reversed(range(plan.top)):
        epochs = plan.ladder[level + 1]
        for bracket in range(len(plan.brackets)):
            done = {c for (b, r, c) in placed if b == bracket and r == level + 1}
            chosen = promotions(results[(bracket, level)], done, plan.eta, direction=direction)
            for config in chosen:
                if budget is not None and committed + epochs > budget:
                    return enqueued
                source = sources[(config, level)]
                rung = Rung(config, bracket, level + 1, epochs, top=level + 1 == plan.top)
                attrs = {k: source.user_attrs[k] for k in _INHERITED if k in source.user_attrs}
                attrs[TrialAttr.FIDELITY] = rung.to_attr()
                study.enqueue_trial(dict(source.params), user_attrs=attrs)
                committed += epochs
                enqueued.append(rung)
                logger.info(
                    "configuration %d promoted to rung %d (%d epochs)", config, rung.rung, epochs
                )
    return enqueued


def rung_config(cfg: TrainConfig, rung: Rung) -> TrainConfig:
    """``cfg`` with its schedule compressed to the rung (:func:`hpo.search.scale_schedule`)."""
    full = Schedule(
        epochs=cfg.epochs,
        warmup_epochs=cfg.optim.warmup_epochs,
        milestones=tuple(cfg.optim.milestones),
        eval_every=cfg.eval_every,
    )
    scaled = scale_schedule(full, rung.epochs)
    optim = dataclasses.replace(
        cfg.optim, warmup_epochs=scaled.warmup_epochs, milestones=scaled.milestones
    )
    return dataclasses.replace(cfg, epochs=scaled.epochs, eval_every=scaled.eval_every, optim=optim)


def _completion_order(trial: FrozenTrial) -> tuple[dt.datetime, int]:
    return (trial.datetime_complete or dt.datetime.max, trial.number)


__all__ = [
    "EpochCounts",
    "decide_epochs",
    "enqueue_promotions",
    "next_epochs",
    "place_new_trial",
    "rung_config",
]
