"""Opening and closing the study database, with heartbeats, bounded pools and reconnects.

Heartbeats: a worker opens its storage with the study's :class:`Heartbeat` (the spec's
``heartbeat`` section, stored with the study): a heartbeat every ``interval`` seconds while a
trial runs; a RUNNING trial silent for ``grace`` seconds is failed by the next worker (or
watchdog) calling ``optuna.storages.fail_stale_trials`` and re-queued up to ``MAX_RETRY`` times
with its params, user attrs and intermediate values, so it can resume from its checkpoint.
Every worker of a study therefore uses the same settings; ``$REID_HPO_HEARTBEAT`` may only
repeat the study's interval (:func:`check_heartbeat_override`).

A worker paused (SIGSTOP, a frozen VM) inside one of its storage transactions would hold that
transaction's row locks, among them the key-share lock that inserting a trial's intermediate
value takes on the trial's row, and the next worker failing the trial as stale would wait
for them for as long as the pause lasts, holding the study lock meanwhile: no trial of the
study could start or be retried. On PostgreSQL a worker's session therefore ends a
transaction left idle for the grace period (``idle_in_transaction_session_timeout``): by then
its heartbeat, which waits for the same connection, is stale anyway. The worker retries the
operation when it comes back, as after a lost connection. Behind a transaction pooler the
setting would leak onto other clients' server connections; PgBouncer's own
``idle_transaction_timeout`` does this there.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy.event
import sqlalchemy.exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from hpo.errors import StorageError
from hpo.storage._optuna_adapter import ReconnectingRDBStorage
from hpo.storage._pooling import TRANSACTION
from hpo.storage._pooling import application_name
from hpo.storage._pooling import connections_per_process
from hpo.storage._pooling import pool_mode
from hpo.storage._urls import is_postgres
from hpo.storage._urls import mask_url
from hpo.storage._urls import normalise_url
from hpo.url_secrets import url_secrets

logger = logging.getLogger(__name__)

ENV_HEARTBEAT = "REID_HPO_HEARTBEAT"
MAX_RETRY = 3
CONNECT_TIMEOUT_S = 10
POOL_TIMEOUT_S = 60
"""How long a thread waits for the process's connection while another thread uses it."""
SQLITE_BUSY_TIMEOUT_S = 60
# Errors raised while two processes create the schema of a fresh database at the same time.
_SCHEMA_RACE_MARKERS = ("already exists", "duplicate key", "database is locked", "unique")
_SCHEMA_RACE_ATTEMPTS = 6


@dataclass(frozen=True)
class Heartbeat:
    """Heartbeat settings of a study's storage (seconds): the study's, for every worker."""

    interval: int
    grace: int


def env_heartbeat_interval() -> int | None:
    """``$REID_HPO_HEARTBEAT`` as an integer, or None when it is not set.

    Raises:
        StorageError: It is set but not a positive integer.
    """
    raw = os.environ.get(ENV_HEARTBEAT, "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise StorageError(f"${ENV_HEARTBEAT}={raw!r} must be a positive integer (seconds)")
    return value


def check_heartbeat_override(study_name: str, interval: int) -> None:
    """Refuse a ``$REID_HPO_HEARTBEAT`` that disagrees with the study's heartbeat interval.

    Raises:
        StorageError: The variable is set to another value (one line naming both).
    """
    override = env_heartbeat_interval()
    if override is not None and override != interval:
        raise StorageError(
            f"${ENV_HEARTBEAT}={override} disagrees with study {study_name!r} "
            f"(heartbeat.interval: {interval} s): the heartbeat is a study setting, so that "
            "workers do not fail each other's trials; unset the variable"
        )


def open_storage(
    url: str,
    *,
    heartbeat: Heartbeat | None = None,
    must_exist: bool = False,
    role: str = "reid-hpo",
) -> optuna.storages.RDBStorage:
    """Open (and on first use create the tables of) the study database at ``url``.

    PostgreSQL: the storage keeps one connection (two behind a transaction pooler,
    :mod:`hpo.storage._pooling`), shared by the process's threads and its study lock. Optuna
    creates and checks the tables with two connections at once, so that is done first by a
    storage without a pool, closed at once. Connections are checked before use
    (``pool_pre_ping``) and never recycled while alive (that would drop a held session lock);
    they show in ``pg_stat_activity`` as ``"<role> <host>:<pid>"``. Connecting gives up
    after ``CONNECT_TIMEOUT_S``; once open, operations retry a lost server for
    :func:`reconnect_budget_s` (:class:`ReconnectingRDBStorage`). SQLite waits up to
    ``SQLITE_BUSY_TIMEOUT_S`` for a lock. A schema-creation race between processes opening a
    fresh database at the same time is retried.

    Args:
        url: Any SQLAlchemy URL; ``postgresql://`` is mapped to psycopg2.
        heartbeat: Record heartbeats with these settings and retry heartbeat-stale trials
            (see module docs); None for a process that runs no trial.
        must_exist: Refuse a SQLite file that does not exist instead of creating it (for
            commands that only read or remove a study).
        role: The process's name in ``pg_stat_activity`` (``"reid-hpo-worker"`` for workers).

    Returns:
        The storage.

    Raises:
        StorageError: Bad URL or scheme, missing driver, unreachable server, failed
            authentication, a bad ``$REID_HPO_POOL_MODE``; the message carries the masked URL
            only.
    """
    url = normalise_url(url)
    masked = mask_url(url)
    if must_exist:
        _check_sqlite_file_exists(url, masked)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        kwargs = _storage_kwargs(url, heartbeat=heartbeat, role=role)
        if is_postgres(url):
            close_storage(_open_with_retries(_schema_kwargs(kwargs), url, masked))
            kwargs.update(skip_table_creation=True, skip_compatibility_check=True)
        storage = _open_with_retries(kwargs, url, masked)
        if heartbeat is not None and is_postgres(url) and pool_mode() != TRANSACTION:
            _end_idle_transactions_after(storage, heartbeat.grace)
        return storage


_SET_IDLE_IN_TRANSACTION_TIMEOUT = (
    "SELECT set_config('idle_in_transaction_session_timeout', %s, false)"
)


def _end_idle_transactions_after(storage: optuna.storages.RDBStorage, seconds: int) -> None:
    """Every connection of ``storage`` ends a transaction left idle for ``seconds`` (a worker
    paused inside one; module docs); the connection that opening the storage left in its pool
    is replaced by one that does."""
    milliseconds = str(int(seconds * 1000))

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute(_SET_IDLE_IN_TRANSACTION_TIMEOUT, (milliseconds,))
        dbapi_connection.commit()

    sqlalchemy.event.listen(storage.engine, "connect", on_connect)
    storage.engine.dispose()


def _open_with_retries(kwargs: dict[str, Any], url: str, masked: str) -> optuna.storages.RDBStorage:
    for attempt in range(1, _SCHEMA_RACE_ATTEMPTS + 1):
        try:
            storage = ReconnectingRDBStorage(**kwargs)
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
            if isinstance(exc, optuna.exceptions.StorageInternalError) and isinstance(
                exc.__cause__, sqlalchemy.exc.SQLAlchemyError
            ):
                exc = exc.__cause__
            if attempt < _SCHEMA_RACE_ATTEMPTS and _is_schema_race(exc):
                logger.debug("schema race on %s (attempt %d); retrying", masked, attempt)
                time.sleep(0.2 * attempt)
                continue
            raise StorageError(_describe(exc, url, masked)) from None
        except (ImportError, ValueError, KeyError, TypeError) as exc:
            raise StorageError(_describe(exc, url, masked)) from None
        logger.debug("opened storage %s", masked)
        return storage
    raise AssertionError("unreachable")  # the loop either returns or raises


def close_storage(storage: optuna.storages.BaseStorage) -> None:
    """Release the connections of a storage opened by :func:`open_storage`."""
    engine = getattr(storage, "engine", None)
    if isinstance(storage, optuna.storages.RDBStorage):
        storage.remove_session()
    if engine is not None:
        engine.dispose()


def missing_sqlite_file(url: str) -> bool:
    """Whether ``url`` names a SQLite file that does not exist (opening would create it)."""
    try:
        parsed = make_url(normalise_url(url))
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return False  # reported, masked, when the storage is opened
    database = parsed.database
    is_file_db = parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    return is_file_db and not Path(str(database)).is_file()


def _check_sqlite_file_exists(url: str, masked: str) -> None:
    if missing_sqlite_file(url):
        raise StorageError(f"no study database at {masked} (the file does not exist)")


def _storage_kwargs(url: str, *, heartbeat: Heartbeat | None, role: str) -> dict[str, Any]:
    engine_kwargs: dict[str, Any] = {}
    if is_postgres(url):
        engine_kwargs = {
            "pool_pre_ping": True,
            "pool_size": connections_per_process(),
            "max_overflow": 0,
            "pool_timeout": POOL_TIMEOUT_S,
            "connect_args": {
                "connect_timeout": CONNECT_TIMEOUT_S,
                "application_name": application_name(role),
            },
        }
    elif url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    # Optuna formats the URL with str.format; braces in a password must be doubled.
    kwargs: dict[str, Any] = {
        "url": url.replace("{", "{{").replace("}", "}}"),
        "engine_kwargs": engine_kwargs,
    }
    if heartbeat is not None:
        kwargs.update(
            heartbeat_interval=heartbeat.interval,
            grace_period=heartbeat.grace,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY, inherit_intermediate_values=True
            ),
        )
    return kwargs


def _schema_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """A storage that creates and checks the tables, then is closed: no pool, no heartbeat,
    and autocommit, so that behind a transaction pooler it holds no server connection between
    statements (Optuna's check runs a query on a second connection while its session's
    transaction is open: processes starting together would each hold one and wait for
    another)."""
    engine_kwargs = {
        "poolclass": NullPool,
        "isolation_level": "AUTOCOMMIT",
        "connect_args": kwargs["engine_kwargs"]["connect_args"],
    }
    return {"url": kwargs["url"], "engine_kwargs": engine_kwargs}


def _is_schema_race(exc: BaseException) -> bool:
    text = str(exc).lower()
    if isinstance(exc, sqlalchemy.exc.IntegrityError):
        return True
    if isinstance(exc, sqlalchemy.exc.OperationalError) and "could not connect" in text:
        return False
    return any(marker in text for marker in _SCHEMA_RACE_MARKERS)


def _describe(exc: BaseException, url: str, masked: str) -> str:
    """One line naming the storage (masked) and the cause, with any secret scrubbed."""
    if isinstance(exc, ImportError | sqlalchemy.exc.NoSuchModuleError):
        cause = "no database driver for this URL scheme (use sqlite:/// or postgresql://)"
    elif isinstance(exc, sqlalchemy.exc.ArgumentError | ValueError):
        # Not shown: a malformed URL may hold a password that mask_url cannot find.
        return "the storage URL is not a valid SQLAlchemy URL (e.g. postgresql://user:pw@host/db)"
    else:
        original = getattr(exc, "orig", None) or exc
        lines = [line.strip() for line in str(original).splitlines() if line.strip()]
        cause = lines[0] if lines else type(original).__name__
        if len(lines) > 1 and lines[0].startswith("connection to server"):
            cause = f"{cause} {lines[1]}"
    return f"cannot open storage {masked}: {_scrub(cause, url)}"


def _scrub(text: str, url: str) -> str:
    """Remove the URL's secrets from ``text`` (driver messages may echo parts of the URL)."""
    text = text.replace(url, mask_url(url))
    for secret in sorted(url_secrets(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


__all__ = [
    "ENV_HEARTBEAT",
    "MAX_RETRY",
    "Heartbeat",
    "check_heartbeat_override",
    "close_storage",
    "env_heartbeat_interval",
    "missing_sqlite_file",
    "open_storage",
]
