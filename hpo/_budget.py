"""The study budget shared by every worker, and the lock that makes "check + take" atomic.

Optuna's ``MaxTrialsCallback`` counts after a trial and stops only its own process, so N
workers overshoot by up to N-1 trials. Here each worker takes a study-wide lock, counts the
trials in the storage, and only then asks for a trial; the lock is released once the new
trial exists (RUNNING) in the storage, so the next worker counts it as pending.

The lock is ``pg_advisory_xact_lock`` on PostgreSQL (held by an open transaction on a
dedicated connection) and an ``fcntl`` lock file beside the database file on SQLite.
"""

from __future__ import annotations

import enum
import fcntl
import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from typing import Protocol

import optuna
import sqlalchemy
import sqlalchemy.exc
from optuna.trial import TrialState

from hpo.storage import is_connection_error
from hpo.storage import retry_on_disconnect

logger = logging.getLogger(__name__)

STARTED_AT_ATTR = "started_at"


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
        The value of the study user attribute ``started_at``.
    """
    started = study.user_attrs.get(STARTED_AT_ATTR)
    if started is None:
        started = time.time()
        study.set_user_attr(STARTED_AT_ATTR, started)
    return float(started)


class StudyLock(Protocol):
    """A study-wide mutual exclusion shared by every worker process."""

    def acquire(self) -> None:
        """Block until this process holds the lock."""

    def release(self) -> None:
        """Release the lock; a no-op when it is not held."""

    def close(self) -> None:
        """Release the lock and free its resources."""


def lock_key(study_name: str) -> int:
    """A signed 64-bit advisory-lock key derived from the study name (stable across hosts).

    Args:
        study_name: The study name.

    Returns:
        The key for ``pg_advisory_xact_lock``.
    """
    digest = hashlib.sha256(f"reid-hpo:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresStudyLock:
    """``pg_advisory_xact_lock`` held by an open transaction on a dedicated connection.

    A worker that dies while holding it loses its connection, which ends the transaction and
    frees the lock: no stale lock survives a crash.

    Args:
        url: A ``postgresql+psycopg2://`` URL (already normalised).
        study_name: The study the lock guards.
    """

    def __init__(self, url: str, study_name: str) -> None:
        self._engine = sqlalchemy.create_engine(
            url,
            poolclass=sqlalchemy.pool.NullPool,
            connect_args={"connect_timeout": 10},
        )
        self._key = lock_key(study_name)
        self._conn: sqlalchemy.Connection | None = None

    def acquire(self) -> None:
        self._conn = retry_on_disconnect(self._lock, what="study lock")

    def _lock(self) -> sqlalchemy.Connection:
        conn = self._engine.connect()
        try:
            conn.begin()
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": self._key})
        except BaseException:
            conn.close()
            raise
        return conn

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.rollback()
            except sqlalchemy.exc.SQLAlchemyError as exc:
                if not is_connection_error(exc):
                    raise
                # The server went away: its end of the transaction, and the lock, are gone.
                logger.warning("study lock released by a lost database connection")
            finally:
                conn.close()

    def close(self) -> None:
        self.release()
        self._engine.dispose()


class FileStudyLock:
    """An exclusive ``fcntl.flock`` on ``<database>.<study>.lock`` beside a SQLite file.

    Args:
        path: The lock file (created when missing).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def acquire(self) -> None:
        handle = self._path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        except BaseException:
            handle.close()
            raise
        self._file = handle

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            finally:
                handle.close()

    def close(self) -> None:
        self.release()


class ThreadStudyLock:
    """A process-local lock, for storages no other process can share (in-memory SQLite)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held = False

    def acquire(self) -> None:
        self._lock.acquire()
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()

    def close(self) -> None:
        self.release()


def open_study_lock(storage_url: str, study_name: str) -> StudyLock:
    """The study lock that fits a storage URL.

    Args:
        storage_url: A normalised SQLAlchemy URL (``postgresql+psycopg2://`` or ``sqlite://``).
        study_name: The study the lock guards.

    Returns:
        A PostgreSQL advisory lock, a lock file beside the SQLite database, or, for any other
        backend, a process-local lock (with a warning: the budget is then only per process).
    """
    url = sqlalchemy.engine.make_url(storage_url)
    backend = url.get_backend_name()
    if backend == "postgresql":
        return PostgresStudyLock(storage_url, study_name)
    if backend == "sqlite" and url.database not in (None, "", ":memory:"):
        digest = hashlib.sha256(study_name.encode()).hexdigest()[:12]
        return FileStudyLock(Path(f"{url.database}.{digest}.lock"))
    if backend != "sqlite":
        logger.warning(
            "no cross-process study lock for %s storages: with several workers the trial "
            "budget may be exceeded by up to one trial per extra worker",
            backend,
        )
    return ThreadStudyLock()
