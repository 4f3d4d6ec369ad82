"""Whether PostgreSQL is reached through a pooler that lends server connections per transaction.

Behind PgBouncer in ``pool_mode = transaction`` (or ``statement``) a session-level advisory
lock stays on whichever server connection ran it (:mod:`hpo.storage._pooling`). The probe
proves that mode instead of guessing it: two client connections ``x`` and ``y`` stay open
while each asks ``pg_backend_pid()`` in turn. Connected directly, or through a pooler in
session mode, each client keeps its own server process for as long as it is connected, so
``y`` never sees ``x``'s pid and ``x``'s pid never changes. Seeing either is therefore proof
that server connections are shared between transactions; not seeing it in a few rounds
proves nothing (a busy pool may always hand ``y`` another server connection), so the probe
only ever refuses on proof. Every wait is bounded: a session pooler whose pool is full makes
``y`` wait for a server connection, and the probe then gives up (no proof).
"""

from __future__ import annotations

import logging
import select
import time
from typing import Any

import psycopg2
import psycopg2.extensions
import sqlalchemy

logger = logging.getLogger(__name__)

ROUNDS = 5
WAIT_S = 5.0


def shares_server_connections(
    url: sqlalchemy.URL, *, application_name: str, rounds: int = ROUNDS, wait_s: float = WAIT_S
) -> bool:
    """Whether the database at ``url`` is proven to be served through a pooler that shares
    server connections between clients' transactions (see the module docs).

    Args:
        url: The storage engine's URL (credentials included).
        application_name: How the probe's two connections show in ``pg_stat_activity``.
        rounds: How many times each client asks for its server pid.
        wait_s: The most the whole probe may wait.

    Returns:
        True on proof; False when none was found, or the probe could not run (the storage's
        own connection reports a database that cannot be reached).
    """
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    deadline = time.monotonic() + wait_s
    clients: list[Any] = []
    try:
        for _ in range(2):
            clients.append(psycopg2.connect(dsn, async_=1, application_name=application_name))
            _wait(clients[-1], deadline)
        x, y = clients
        first = _server_pid(x, deadline)
        for _ in range(rounds):
            seen_x, seen_y = _server_pid(x, deadline), _server_pid(y, deadline)
            if seen_x != first or seen_y in (first, seen_x):
                return True
        return False
    except (psycopg2.Error, OSError, TimeoutError) as exc:
        logger.debug("pooler probe gave no answer: %s", exc)
        return False
    finally:
        for client in clients:
            client.close()


def _server_pid(conn: Any, deadline: float) -> int:
    cursor = conn.cursor()
    cursor.execute("SELECT pg_backend_pid()")
    _wait(conn, deadline)
    return int(cursor.fetchone()[0])


def _wait(conn: Any, deadline: float) -> None:
    """Drive an asynchronous psycopg2 connection until its operation is done, or time out."""
    while (state := conn.poll()) != psycopg2.extensions.POLL_OK:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer within the probe's time")
        reading = state == psycopg2.extensions.POLL_READ
        select.select([conn] if reading else [], [] if reading else [conn], [], left)


__all__ = ["shares_server_connections"]
