"""How many PostgreSQL connections a process keeps, and how it is told about a pooler.

A process keeps one connection to PostgreSQL (``pool_size`` 1, no overflow): its loop, its
heartbeat thread and its study lock (a session-level advisory lock, :mod:`hpo.storage._locks`)
share it. Behind PgBouncer in transaction pooling mode a session-level lock would stay on
whichever server connection ran it, so ``$REID_HPO_POOL_MODE=transaction`` switches the lock to
a transaction-level one held on a second client connection (``pool_size`` 2); PgBouncer then
lends a server connection only while a transaction is open. Without it, the study lock
refuses to start where :mod:`hpo.storage._pooler_probe` proves a transaction pooler.
"""

from __future__ import annotations

import os
import socket

from hpo.errors import StorageError

ENV_POOL_MODE = "REID_HPO_POOL_MODE"
SESSION = "session"
TRANSACTION = "transaction"


def pool_mode() -> str:
    """``$REID_HPO_POOL_MODE``: ``"session"`` (the default: direct PostgreSQL, or a pooler in
    session mode) or ``"transaction"`` (PgBouncer with ``pool_mode = transaction``).

    Raises:
        StorageError: Any other value.
    """
    raw = os.environ.get(ENV_POOL_MODE, "").strip().lower() or SESSION
    if raw not in (SESSION, TRANSACTION):
        raise StorageError(
            f"${ENV_POOL_MODE}={raw!r} must be {SESSION!r} (direct PostgreSQL, the default) "
            f"or {TRANSACTION!r} (behind PgBouncer with pool_mode = transaction)"
        )
    return raw


def connections_per_process() -> int:
    """Client connections a process keeps open: 1, or 2 behind a transaction pooler."""
    return 2 if pool_mode() == TRANSACTION else 1


def application_name(role: str) -> str:
    """``"<role> <host>:<pid>"``: how this process shows in ``pg_stat_activity``."""
    return f"{role} {socket.gethostname()}:{os.getpid()}"


__all__ = [
    "ENV_POOL_MODE",
    "SESSION",
    "TRANSACTION",
    "application_name",
    "connections_per_process",
    "pool_mode",
]
