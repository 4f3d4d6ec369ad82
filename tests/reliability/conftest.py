"""Fixtures of the reliability suite: a private PostgreSQL server and a tiny MARS dataset."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hpo._worker_support import make_dataset
from tests.reliability._private_pg import PrivatePostgres
from tests.reliability._private_pg import postgres_binaries_available


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    """A private PostgreSQL 15 server (password auth over TCP) that tests may stop and start."""
    if not postgres_binaries_available():
        pytest.fail("PostgreSQL 15 binaries or the postgres OS user are missing")
    server = PrivatePostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic MARS tree (8 ids, 32x16 frames) shared by the suite (read-only)."""
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")
