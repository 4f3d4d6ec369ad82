"""Access to the real PostgreSQL server for integration tests.

Each test gets its own freshly created database, dropped afterwards. When the server is
unreachable the test is skipped locally but *fails* under ``CI=true``: CI must never count
a skipped database test as passing.

The drop runs on a background thread while the next tests run: PostgreSQL 15 makes every
``DROP DATABASE`` wait for a forced checkpoint (seconds on a busy disk), which no test needs
to wait for. :func:`finish_drops` (the session's end) waits for them and reports a failed one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

PG_HOST = os.environ.get("REID_HPO_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("REID_HPO_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("REID_HPO_TEST_PG_USER", "postgres")

_dropper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="drop-test-database")
_drops: list[Future[None]] = []


def _admin_connect():  # type: ignore[no-untyped-def]
    import psycopg2

    conn = psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5
    )
    conn.autocommit = True
    return conn


def require_postgres() -> None:
    """Skip (locally) or fail (CI) when the server cannot be reached."""
    try:
        _admin_connect().close()
    except Exception as exc:  # any driver error means "no server"
        message = f"PostgreSQL at {PG_HOST}:{PG_PORT} is unreachable: {exc}".strip()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def fresh_database() -> Iterator[str]:
    """Create an empty database and yield its ``postgresql+psycopg2://`` URL; drop it after."""
    require_postgres()
    name = f"reid_hpo_test_{uuid.uuid4().hex[:12]}"
    _execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        _drops.append(_dropper.submit(_execute, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _execute(statement: str) -> None:
    conn = _admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    finally:
        conn.close()


def finish_drops() -> None:
    """Wait for the test databases still being dropped; raise the first drop that failed."""
    done, _drops[:] = list(_drops), []
    for drop in done:
        drop.result()
