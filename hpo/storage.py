"""Study storage: URL resolution, masking, and an :class:`optuna.storages.RDBStorage` factory.

Resolution order for the storage URL: ``--storage``, then ``$REID_HPO_STORAGE``, then an
embedded SQLite file ``reid_hpo.db`` in the working directory. Plain ``postgresql://`` (and
``postgres://``) URLs are mapped to the psycopg2 driver that reid-hpo ships, because SQLAlchemy
2.1 would otherwise pick psycopg 3. Every URL that reaches a log line, an exception or the
terminal goes through :func:`mask_url` first.

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
import re
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import optuna
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from hpo.errors import StorageError

logger = logging.getLogger(__name__)

ENV_STORAGE = "REID_HPO_STORAGE"
ENV_HEARTBEAT = "REID_HPO_HEARTBEAT"
ENV_RECONNECT = "REID_HPO_RECONNECT_S"
DEFAULT_STORAGE_URL = "sqlite:///reid_hpo.db"
HEARTBEAT_INTERVAL = 30
GRACE_FACTOR = 3
MAX_RETRY = 3
CONNECT_TIMEOUT_S = 10
SQLITE_BUSY_TIMEOUT_S = 60
RECONNECT_S = 300
_RECONNECT_FIRST_DELAY_S = 0.5
_RECONNECT_MAX_DELAY_S = 10.0

_PG_PREFIXES = ("postgresql://", "postgres://")
_PG_DRIVER_PREFIX = "postgresql+psycopg2://"
# password=... in a query string (the user:password@ form is handled in mask_url).
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&](?:password|passwd|pwd)=)(?P<pw>[^&#]*)", re.I)
# Errors raised while two processes create the schema of a fresh database at the same time.
_SCHEMA_RACE_MARKERS = ("already exists", "duplicate key", "database is locked", "unique")
_SCHEMA_RACE_ATTEMPTS = 6


def resolve_storage_url(cli_value: str | None) -> str:
    """The storage URL to use: ``--storage``, else ``$REID_HPO_STORAGE``, else local SQLite.

    Args:
        cli_value: The ``--storage`` option (``None`` or empty when not given).

    Returns:
        The URL, normalised with :func:`normalise_url`.

    Example:
        >>> resolve_storage_url("postgres://u@h/db")
        'postgresql+psycopg2://u@h/db'
    """
    for candidate in (cli_value, os.environ.get(ENV_STORAGE)):
        if candidate and candidate.strip():
            return normalise_url(candidate.strip())
    return DEFAULT_STORAGE_URL


def normalise_url(url: str) -> str:
    """Map ``postgresql://`` and ``postgres://`` to ``postgresql+psycopg2://``; else unchanged.

    Example:
        >>> normalise_url("postgresql://alice:s3cret@db:5432/reid")
        'postgresql+psycopg2://alice:s3cret@db:5432/reid'
    """
    for prefix in _PG_PREFIXES:
        if url.startswith(prefix):
            return _PG_DRIVER_PREFIX + url[len(prefix) :]
    return url


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (safe to print or log).

    Example:
        >>> mask_url("postgresql+psycopg2://alice:s3cret@db/reid")
        'postgresql+psycopg2://alice:***@db/reid'
    """
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        userinfo, _, host = rest.rpartition("@")
        if ":" in userinfo:
            url = f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
    return _QUERY_PASSWORD.sub(r"\g<head>***", url)


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


def is_postgres(url: str) -> bool:
    """Whether the (normalised) URL points at PostgreSQL."""
    return normalise_url(url).startswith("postgresql")


_T = TypeVar("_T")
_retrying = threading.local()


def reconnect_budget_s() -> float:
    """Seconds a storage operation keeps retrying a lost database (``$REID_HPO_RECONNECT_S``).

    Raises:
        StorageError: ``$REID_HPO_RECONNECT_S`` is not a number >= 0.
    """
    raw = os.environ.get(ENV_RECONNECT, "").strip()
    if not raw:
        return float(RECONNECT_S)
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0:
        raise StorageError(f"${ENV_RECONNECT}={raw!r} must be a number of seconds >= 0")
    return value


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it wraps) is a lost or refused database connection.

    Optuna wraps driver errors in ``StorageInternalError``; SQLAlchemy reports a dropped or
    refused connection as ``OperationalError`` / ``InterfaceError`` or marks the error
    ``connection_invalidated``. Integrity and programming errors are not connection errors.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            return True
        if isinstance(seen, sqlalchemy.exc.DBAPIError) and seen.connection_invalidated:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def retry_on_disconnect(operation: Callable[[], _T], *, what: str) -> _T:
    """Run ``operation``; while the database is unreachable, retry it with exponential back-off.

    Back-off starts at 0.5 s and doubles up to 10 s; after :func:`reconnect_budget_s` seconds
    the last error is raised. Other errors are raised at once. Nested calls retry only at the
    outermost level.

    Args:
        operation: A storage operation that is safe to repeat.
        what: Its name, for the warning logged at each retry.

    Returns:
        What ``operation`` returns.
    """
    if getattr(_retrying, "active", False):
        return operation()
    _retrying.active = True
    try:
        started = time.monotonic()
        delay = _RECONNECT_FIRST_DELAY_S
        while True:
            try:
                return operation()
            except Exception as exc:
                waited = time.monotonic() - started
                if not is_connection_error(exc) or waited + delay > reconnect_budget_s():
                    raise
                logger.warning(
                    "database unreachable during %s (%.0f s so far); retrying in %.1f s",
                    what,
                    waited,
                    delay,
                )
                time.sleep(delay)
                delay = min(2 * delay, _RECONNECT_MAX_DELAY_S)
    finally:
        _retrying.active = False


class ReconnectingRDBStorage(optuna.storages.RDBStorage):
    """An :class:`optuna.storages.RDBStorage` whose operations survive a database restart.

    Every operation is retried by :func:`retry_on_disconnect` while the server is unreachable;
    with ``pool_pre_ping`` the next attempt after the restart opens a fresh connection. The
    heartbeat thread's ``record_heartbeat`` is retried the same way instead of ending the
    thread on the first error.
    """


_RETRIED_METHODS = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_trial_user_attrs",
    "get_trial_system_attrs",
    "get_all_studies",
    "create_new_trial",
    "_create_new_trial",
    "set_trial_param",
    "_set_trial_param",
    "get_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number",
    "get_trial",
    "get_all_trials",
    "_get_trials",
    "get_best_trial",
    "_get_best_trial_id",
    "record_heartbeat",
    "_get_stale_trial_ids",
)


def _with_reconnect(name: str) -> Callable[..., Any]:
    method = getattr(optuna.storages.RDBStorage, name)

    def retried(self: ReconnectingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retry_on_disconnect(lambda: method(self, *args, **kwargs), what=name)

    retried.__name__ = name
    retried.__doc__ = method.__doc__
    return retried


for _method_name in _RETRIED_METHODS:
    setattr(ReconnectingRDBStorage, _method_name, _with_reconnect(_method_name))


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
    "DEFAULT_STORAGE_URL",
    "ENV_HEARTBEAT",
    "ENV_RECONNECT",
    "ENV_STORAGE",
    "GRACE_FACTOR",
    "HEARTBEAT_INTERVAL",
    "MAX_RETRY",
    "RECONNECT_S",
    "ReconnectingRDBStorage",
    "close_storage",
    "heartbeat_interval",
    "is_connection_error",
    "is_postgres",
    "mask_url",
    "normalise_url",
    "open_storage",
    "reconnect_budget_s",
    "resolve_storage_url",
    "retry_on_disconnect",
]
