"""Opening and closing the study database, with heartbeats, bounded pools and reconnects.

Heartbeats: storages opened with ``heartbeat=True`` record a heartbeat every
:func:`heartbeat_interval` seconds (``$REID_HPO_HEARTBEAT``, default 30) while a trial runs; a
RUNNING trial silent for ``GRACE_FACTOR`` intervals is failed by the next worker (or watchdog)
calling ``optuna.storages.fail_stale_trials`` and re-queued up to ``MAX_RETRY`` times with its
params, user attrs and intermediate values, so it can resume from its checkpoint. Every process
that touches a study must open its storage with the same settings: callbacks are not stored in
the database.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from typing import Any

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from hpo.errors import StorageError
from hpo.storage._optuna_adapter import ReconnectingRDBStorage
from hpo.storage._urls import is_postgres
from hpo.storage._urls import mask_url
from hpo.storage._urls import normalise_url

logger = logging.getLogger(__name__)

ENV_HEARTBEAT = "REID_HPO_HEARTBEAT"
HEARTBEAT_INTERVAL = 30
GRACE_FACTOR = 3
MAX_RETRY = 3
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_S = 60
# Errors raised while two processes create the schema of a fresh database at the same time.
_SCHEMA_RACE_MARKERS = ("already exists", "duplicate key", "database is locked", "unique")
_SCHEMA_RACE_ATTEMPTS = 6


def heartbeat_interval() -> int:
    """Seconds between two heartbeats of a running trial (``$REID_HPO_HEARTBEAT`` or 30).

    Raises:
        StorageError: ``$REID_HPO_HEARTBEAT`` is not a positive integer.
    """
    raw = os.environ.get(ENV_HEARTBEAT, "").strip()
    if not raw:
        return HEARTBEAT_INTERVAL
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise StorageError(f"${ENV_HEARTBEAT}={raw!r} must be a positive integer (seconds)")
    return value


def open_storage(url: str, *, heartbeat: bool = True) -> optuna.storages.RDBStorage:
    """Open (and on first use create the tables of) the study database at ``url``.

    PostgreSQL connections are checked before use (``pool_pre_ping``), the pool is bounded
    (2 + 2 overflow: a worker needs one connection for its loop and one for its heartbeat) and
    connecting gives up after ``CONNECT_TIMEOUT_S``; once open, operations retry a lost
    server for :func:`reconnect_budget_s` (:class:`ReconnectingRDBStorage`). SQLite waits up to
    ``SQLITE_BUSY_TIMEOUT_S`` for a lock. A schema-creation race between processes opening a
    fresh database at the same time is retried.

    Args:
        url: Any SQLAlchemy URL; ``postgresql://`` is mapped to psycopg2.
        heartbeat: Record heartbeats and retry heartbeat-stale trials (see module docs).

    Returns:
        The storage.

    Raises:
        StorageError: Bad URL or scheme, missing driver, unreachable server, failed
            authentication; the message carries the masked URL only.
    """
    url = normalise_url(url)
    masked = mask_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _open_with_retries(_storage_kwargs(url, heartbeat=heartbeat), url, masked)


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


def _storage_kwargs(url: str, *, heartbeat: bool) -> dict[str, Any]:
    engine_kwargs: dict[str, Any] = {}
    if is_postgres(url):
        engine_kwargs = {
            "pool_pre_ping": True,
            "pool_size": 2,
            "max_overflow": 2,
            "pool_recycle": 3600,
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_S},
        }
    elif url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    # Optuna formats the URL with str.format; braces in a password must be doubled.
    kwargs: dict[str, Any] = {
        "url": url.replace("{", "{{").replace("}", "}}"),
        "engine_kwargs": engine_kwargs,
    }
    if heartbeat:
        interval = heartbeat_interval()
        kwargs.update(
            heartbeat_interval=interval,
            grace_period=GRACE_FACTOR * interval,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=MAX_RETRY, inherit_intermediate_values=True
            ),
        )
    return kwargs


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
    """Remove the URL's password from ``text`` (driver messages may echo parts of the URL)."""
    text = text.replace(url, mask_url(url))
    try:
        password = make_url(url).password
    except (sqlalchemy.exc.ArgumentError, ValueError):
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text


__all__ = [
    "ENV_HEARTBEAT",
    "GRACE_FACTOR",
    "HEARTBEAT_INTERVAL",
    "MAX_RETRY",
    "close_storage",
    "heartbeat_interval",
    "open_storage",
]
