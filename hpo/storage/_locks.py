"""The study lock that makes a worker's "check the budget + take a trial" atomic.

``pg_advisory_xact_lock`` on PostgreSQL (held by an open transaction on a dedicated
connection) and an ``fcntl`` lock file beside the database file on SQLite.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import threading
from pathlib import Path
from typing import IO
from typing import Protocol

import sqlalchemy
import sqlalchemy.exc

from hpo.storage._reconnect import is_connection_error
from hpo.storage._reconnect import retry_on_disconnect

logger = logging.getLogger(__name__)


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


__all__ = [
    "FileStudyLock",
    "PostgresStudyLock",
    "StudyLock",
    "ThreadStudyLock",
    "lock_key",
    "open_study_lock",
]
