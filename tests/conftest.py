"""Shared fixtures: a fresh PostgreSQL database, a SQLite URL, small CPU settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._helpers.postgres import fresh_database

# Two cores: keep torch from oversubscribing when several test processes run.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True, scope="session")
def _torch_threads() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    """URL of a new, empty database on the real server (fails under CI=true if it is down)."""
    with fresh_database() as url:
        yield url


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"
