"""Surviving a database restart: classify lost connections and retry with back-off."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy.exc

from hpo.errors import StorageError

logger = logging.getLogger(__name__)

ENV_RECONNECT = "REID_HPO_RECONNECT_S"
RECONNECT_S = 300
_RECONNECT_FIRST_DELAY_S = 0.5
RECONNECT_MAX_DELAY_S = 10.0
"""The longest wait between two retries: a live worker's heartbeat is recorded at most this
long after the database comes back."""

_T = TypeVar("_T")
_retrying = threading.local()
_outage_ended_at: float | None = None  # time.monotonic() when the database last came back


def seconds_since_outage() -> float | None:
    """Seconds since an operation of this process (any thread: the worker loop or its
    heartbeat thread) last succeeded after losing the database; None if it never lost it."""
    ended = _outage_ended_at
    return None if ended is None else time.monotonic() - ended


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
    global _outage_ended_at
    if getattr(_retrying, "active", False):
        return operation()
    _retrying.active = True
    try:
        started = time.monotonic()
        delay = _RECONNECT_FIRST_DELAY_S
        lost = False
        while True:
            try:
                result = operation()
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
                lost = True
                time.sleep(delay)
                delay = min(2 * delay, RECONNECT_MAX_DELAY_S)
            else:
                if lost:
                    _outage_ended_at = time.monotonic()
                return result
    finally:
        _retrying.active = False


__all__ = [
    "ENV_RECONNECT",
    "RECONNECT_MAX_DELAY_S",
    "RECONNECT_S",
    "is_connection_error",
    "reconnect_budget_s",
    "retry_on_disconnect",
    "seconds_since_outage",
]
