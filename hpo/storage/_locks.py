"""The study lock that makes a worker's "check the budget + take a trial" atomic.

PostgreSQL: an advisory lock on the storage's own pooled connection, so that a worker keeps
one connection in all (:mod:`hpo.storage._pooling`): session-level (``pg_advisory_lock``) on
a direct connection, transaction-level (``pg_try_advisory_xact_lock``) behind a transaction
pooler. SQLite: an ``fcntl`` lock file beside the database file.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import random
import threading
import time
from pathlib import Path
from typing import IO
from typing import Protocol

import optuna
import sqlalchemy
import sqlalchemy.exc

from hpo.errors import StorageError
from hpo.storage._pooler_probe import shares_server_connections
from hpo.storage._pooling import ENV_POOL_MODE
from hpo.storage._pooling import TRANSACTION
from hpo.storage._pooling import application_name
from hpo.storage._pooling import pool_mode
from hpo.storage._reconnect import is_connection_error
from hpo.storage._reconnect import retry_on_disconnect
from hpo.storage._urls import mask_url

logger = logging.getLogger(__name__)

_LOCK = sqlalchemy.text("SELECT pg_advisory_lock(:key)")
_UNLOCK = sqlalchemy.text("SELECT pg_advisory_unlock(:key)")
_TRY_XACT_LOCK = sqlalchemy.text("SELECT pg_try_advisory_xact_lock(:key)")
_POLL_FIRST_S = 0.02
_POLL_MAX_S = 0.25


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
        The key for ``pg_advisory_lock`` / ``pg_try_advisory_xact_lock``.
    """
    digest = hashlib.sha256(f"reid-hpo:{study_name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _warn_lost() -> None:
    logger.warning(
        "the study lock was already gone at release: the database connection was lost while "
        "it was held (or the storage is behind a transaction pooler without $%s=%s)",
        ENV_POOL_MODE,
        TRANSACTION,
    )


class SessionAdvisoryLock:
    """``pg_advisory_lock`` taken on the storage's single pooled connection.

    The lock belongs to the server session, not to a transaction, so the storage's own
    operations run on the same connection while it is held; the pool has one connection
    (``max_overflow`` 0), so the release runs on the session that took it. A worker that dies
    loses its connection, which frees the lock: no stale lock survives a crash. Waiting
    holds the connection, which no other thread of a worker needs between trials.

    Args:
        engine: The storage's engine (:func:`hpo.storage.open_storage`, one connection).
        study_name: The study the lock guards.
    """

    def __init__(self, engine: sqlalchemy.Engine, study_name: str) -> None:
        self._engine = engine
        self._key = lock_key(study_name)
        self._held = False

    def acquire(self) -> None:
        retry_on_disconnect(self._lock, what="study lock")
        self._held = True

    def _lock(self) -> None:
        with self._engine.connect() as conn:
            conn.execute(_LOCK, {"key": self._key})
            conn.commit()

    def release(self) -> None:
        if not self._held:
            return
        self._held = False
        try:
            with self._engine.connect() as conn:
                released = bool(conn.execute(_UNLOCK, {"key": self._key}).scalar())
                conn.commit()
        except sqlalchemy.exc.SQLAlchemyError as exc:
            if not is_connection_error(exc):
                raise
            released = False  # the server went away: its session, and the lock, are gone
        if not released:
            _warn_lost()

    def close(self) -> None:
        self.release()


class TransactionAdvisoryLock:
    """``pg_try_advisory_xact_lock`` in a transaction kept open on the storage's second pooled
    connection, for PgBouncer in transaction pooling mode.

    The pooler lends a server connection for the transaction, so the lock and the server
    connection are released together (a rollback, or the client's death). The lock is polled
    (20 ms doubling to 250 ms, with jitter) rather than waited for: a waiter blocked inside a
    transaction would hold a server connection, and enough of them would leave the holder
    none for its own operations.

    Args:
        engine: The storage's engine (two connections in transaction mode).
        study_name: The study the lock guards.
    """

    def __init__(self, engine: sqlalchemy.Engine, study_name: str) -> None:
        self._engine = engine
        self._key = lock_key(study_name)
        self._conn: sqlalchemy.Connection | None = None

    def acquire(self) -> None:
        self._conn = retry_on_disconnect(self._lock, what="study lock")

    def _lock(self) -> sqlalchemy.Connection:
        conn = self._engine.connect()
        delay = _POLL_FIRST_S
        try:
            while not conn.execute(_TRY_XACT_LOCK, {"key": self._key}).scalar():
                conn.rollback()
                time.sleep(delay * random.uniform(0.5, 1.0))
                delay = min(2 * delay, _POLL_MAX_S)
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
                _warn_lost()
            finally:
                conn.close()

    def close(self) -> None:
        self.release()


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


def _refuse_a_transaction_pooler(engine: sqlalchemy.Engine) -> None:
    """Refuse a session-level lock where the probe proves a transaction pooler.

    Raises:
        StorageError: PostgreSQL is served through a pooler in transaction mode.
    """
    if shares_server_connections(engine.url, application_name=application_name("pool probe")):
        raise StorageError(
            f"{mask_url(engine.url.render_as_string(hide_password=False))} is behind a "
            "connection pooler in transaction mode (two connections were served by one "
            f"server process): set ${ENV_POOL_MODE}={TRANSACTION} so that the study lock "
            "is held per transaction"
        )


def open_study_lock(storage: optuna.storages.BaseStorage, study_name: str) -> StudyLock:
    """The study lock that fits a storage opened by :func:`hpo.storage.open_storage`.

    Args:
        storage: The worker's storage (a PostgreSQL lock uses its connection).
        study_name: The study the lock guards.

    Returns:
        A PostgreSQL advisory lock (session or transaction level, ``$REID_HPO_POOL_MODE``), a
        lock file beside the SQLite database, or, for any other storage, a process-local lock
        (with a warning: the budget is then only per process).

    Raises:
        StorageError: ``$REID_HPO_POOL_MODE`` is not ``session`` or ``transaction``, or it is
            not set while PostgreSQL is proven to be behind a transaction pooler.
    """
    engine: sqlalchemy.Engine | None = getattr(storage, "engine", None)
    backend = engine.url.get_backend_name() if engine is not None else "other"
    if engine is not None and backend == "postgresql":
        if pool_mode() == TRANSACTION:
            return TransactionAdvisoryLock(engine, study_name)
        _refuse_a_transaction_pooler(engine)
        return SessionAdvisoryLock(engine, study_name)
    database = engine.url.database if engine is not None else None
    if backend == "sqlite" and database not in (None, "", ":memory:"):
        digest = hashlib.sha256(study_name.encode()).hexdigest()[:12]
        return FileStudyLock(Path(f"{database}.{digest}.lock"))
    if backend != "sqlite":
        logger.warning(
            "no cross-process study lock for %s storages: with several workers the trial "
            "budget may be exceeded by up to one trial per extra worker",
            backend,
        )
    return ThreadStudyLock()


__all__ = [
    "FileStudyLock",
    "SessionAdvisoryLock",
    "StudyLock",
    "ThreadStudyLock",
    "TransactionAdvisoryLock",
    "lock_key",
    "open_study_lock",
]
