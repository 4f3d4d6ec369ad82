"""What tests/conftest.py sets up for the whole suite: the objects collection built are out of
the garbage collector's sight, and test databases are dropped in the background, all of them
gone once the session waits for the drops."""

from __future__ import annotations

import gc

from tests._helpers.postgres import _admin_connect
from tests._helpers.postgres import finish_drops
from tests._helpers.postgres import fresh_database


def test_what_collection_built_is_frozen() -> None:
    assert gc.get_freeze_count() > 1000


def test_a_fresh_database_is_dropped_once_the_drops_are_finished() -> None:
    with fresh_database() as url:
        name = url.rsplit("/", 1)[1]
        assert _databases_named(name) == 1
    finish_drops()
    assert _databases_named(name) == 0


def _databases_named(name: str) -> int:
    conn = _admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            (count,) = cur.fetchone()
    finally:
        conn.close()
    return int(count)
