"""The study budget shared by every worker, and the lock that makes "check + take" atomic.

Optuna's ``MaxTrialsCallback`` counts after a trial and stops only its own process, so N
workers overshoot by up to N-1 trials. Here each worker takes a study-wide lock, counts the
trials in the storage, and only then asks for a trial; the lock is released once the new
trial exists (RUNNING) in the storage, so the next worker counts it as pending.

The lock is ``pg_advisory_xact_lock`` on PostgreSQL (held by an open transaction on a
dedicated connection) and an ``fcntl`` lock file beside the database file on SQLite.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from dataclasses import dataclass

import optuna
from optuna.trial import TrialState

from hpo.study.records import StudyAttr

logger = logging.getLogger(__name__)


class Decision(enum.Enum):
    """What a worker does at a budget check."""

    TAKE = "take"
    """Ask for a trial: a WAITING retry when there is one, else a new trial."""
    WAIT = "wait"
    """The budget is only pending (other workers' RUNNING trials): wait and re-check."""
    DONE = "done"
    """Enough trials finished (COMPLETE + PRUNED)."""
    TIMEOUT = "timeout"
    """The study's time budget is spent."""


@dataclass(frozen=True)
class TrialCounts:
    """Trials of one study by state, as seen at one budget check."""

    complete: int = 0
    pruned: int = 0
    running: int = 0
    waiting: int = 0
    failed: int = 0

    @property
    def finished(self) -> int:
        """Trials that use up the budget (COMPLETE + PRUNED)."""
        return self.complete + self.pruned

    @property
    def pending(self) -> int:
        """Trials that may still use up the budget (RUNNING + WAITING)."""
        return self.running + self.waiting

    @classmethod
    def of(cls, study: optuna.Study) -> TrialCounts:
        """Count the trials of ``study`` in its storage.

        Args:
            study: The study to count.

        Returns:
            The counts by state.
        """
        by_state = {state: 0 for state in TrialState}
        for trial in study.get_trials(deepcopy=False):
            by_state[trial.state] += 1
        return cls(
            complete=by_state[TrialState.COMPLETE],
            pruned=by_state[TrialState.PRUNED],
            running=by_state[TrialState.RUNNING],
            waiting=by_state[TrialState.WAITING],
            failed=by_state[TrialState.FAIL],
        )


def decide(
    counts: TrialCounts,
    *,
    n_trials: int | None,
    elapsed_s: float,
    timeout_s: float | None,
) -> Decision:
    """Decide, under the study lock, whether this worker may take a trial.

    WAITING trials (retries of dead or interrupted trials) are part of the pending budget
    and are always taken first. A new trial is taken only while finished + pending stays
    below ``n_trials``, so N workers never run more than ``n_trials`` trials that count.

    Args:
        counts: The study's trials by state.
        n_trials: The trial budget (COMPLETE + PRUNED), or None for no trial budget.
        elapsed_s: Seconds since the study started (its ``started_at`` attribute).
        timeout_s: The study's time budget in seconds, or None.

    Returns:
        The decision.

    Example:
        >>> decide(TrialCounts(complete=3, running=1), n_trials=4, elapsed_s=0, timeout_s=None)
        <Decision.WAIT: 'wait'>
    """
    if timeout_s is not None and elapsed_s >= timeout_s:
        return Decision.TIMEOUT
    if n_trials is None:
        return Decision.TAKE
    if counts.finished >= n_trials:
        return Decision.DONE
    if counts.waiting > 0 or counts.finished + counts.running < n_trials:
        return Decision.TAKE
    return Decision.WAIT


def study_started_at(study: optuna.Study) -> float:
    """The study's start time (Unix seconds), written once by the first worker.

    Call it under the study lock so that concurrent first workers agree on one value.

    Args:
        study: The study.

    Returns:
        The study user attribute :attr:`~hpo.study.records.StudyAttr.STARTED_AT`.
    """
    started = study.user_attrs.get(StudyAttr.STARTED_AT)
    if started is None:
        started = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        study.set_user_attr(StudyAttr.STARTED_AT, started)
    if isinstance(started, str):
        return dt.datetime.fromisoformat(started).timestamp()
    return float(started)  # Unix seconds, as studies of earlier versions stored it


__all__ = ["Decision", "TrialCounts", "decide", "study_started_at"]
