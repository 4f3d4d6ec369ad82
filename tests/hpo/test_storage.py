"""Storage URLs: resolution, psycopg2 mapping, masking; RDBStorage settings; failures."""

from __future__ import annotations

import os
import socket
import traceback
from pathlib import Path

import optuna
import pytest
import sqlalchemy

from hpo.errors import StorageError
from hpo.storage import DEFAULT_STORAGE_URL
from hpo.storage import Heartbeat
from hpo.storage import check_heartbeat_override
from hpo.storage import close_storage
from hpo.storage import env_heartbeat_interval
from hpo.storage import mask_url
from hpo.storage import normalise_url
from hpo.storage import open_storage
from hpo.storage import resolve_storage_url

SECRET = "s3cr3t-pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalise_url(url: str, expected: str) -> None:
    assert normalise_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            f"postgresql+psycopg2://alice:{SECRET}@db:5432/reid",
            "postgresql+psycopg2://alice:***@db:5432/reid",
        ),
        (f"postgresql://alice:p@ss{SECRET}@db/reid", "postgresql://alice:***@db/reid"),
        (
            f"postgresql://db/reid?user=a&password={SECRET}",
            "postgresql://db/reid?user=a&password=***",
        ),
        ("postgresql://alice@db/reid", "postgresql://alice@db/reid"),
        ("sqlite:///reid_hpo.db", "sqlite:///reid_hpo.db"),
    ],
)
def test_mask_url_hides_the_password(url: str, expected: str) -> None:
    assert mask_url(url) == expected
    assert SECRET not in mask_url(url)


def test_resolve_prefers_the_cli_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REID_HPO_STORAGE", "sqlite:///env.db")
    assert resolve_storage_url("postgresql://u@h/db") == "postgresql+psycopg2://u@h/db"


def test_resolve_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REID_HPO_STORAGE", "postgres://u@h/db")
    assert resolve_storage_url(None) == "postgresql+psycopg2://u@h/db"


def test_resolve_defaults_to_local_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REID_HPO_STORAGE", raising=False)
    assert resolve_storage_url(None) == DEFAULT_STORAGE_URL == "sqlite:///reid_hpo.db"
    assert resolve_storage_url("  ") == DEFAULT_STORAGE_URL


def test_heartbeat_interval_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REID_HPO_HEARTBEAT", raising=False)
    assert env_heartbeat_interval() is None
    monkeypatch.setenv("REID_HPO_HEARTBEAT", "2")
    assert env_heartbeat_interval() == 2
    monkeypatch.setenv("REID_HPO_HEARTBEAT", "soon")
    with pytest.raises(StorageError, match="REID_HPO_HEARTBEAT"):
        env_heartbeat_interval()


def test_an_environment_heartbeat_may_only_repeat_the_studys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REID_HPO_HEARTBEAT", "30")
    check_heartbeat_override("s", 30)
    monkeypatch.setenv("REID_HPO_HEARTBEAT", "2")
    with pytest.raises(StorageError) as caught:
        check_heartbeat_override("s", 30)
    assert str(caught.value).splitlines() == [str(caught.value)]
    assert "REID_HPO_HEARTBEAT=2 disagrees with study 's' (heartbeat.interval: 30 s)" in str(
        caught.value
    )


def test_sqlite_storage_has_heartbeat_and_retry(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url, heartbeat=Heartbeat(interval=2, grace=7))
    try:
        assert storage.get_heartbeat_interval() == 2
        assert storage.grace_period == 7
        callback = storage.get_heartbeat_stale_trial_callback()
        assert isinstance(callback, optuna.storages.RetryHeartbeatStaleTrialCallback)
        assert callback._max_retry == 3 and callback._inherit_intermediate_values
    finally:
        close_storage(storage)


def test_a_read_never_creates_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "new.db"
    with pytest.raises(StorageError, match=r"no study database at sqlite:///.*new\.db"):
        open_storage(f"sqlite:///{missing}", must_exist=True)
    assert not missing.exists()


def test_storage_without_heartbeat(sqlite_url: str) -> None:
    storage = open_storage(sqlite_url)
    try:
        assert storage.get_heartbeat_interval() is None
    finally:
        close_storage(storage)


@pytest.mark.postgres
def test_postgres_storage_settings(postgres_url: str) -> None:
    plain = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    storage = open_storage(plain, heartbeat=Heartbeat(interval=1, grace=3), role="reid-hpo-test")
    try:
        assert storage.url.startswith("postgresql+psycopg2://")
        assert storage.engine.pool._pre_ping is True
        assert storage.engine.pool.size() == 1
        assert storage.engine.pool._max_overflow == 0  # a worker keeps one connection
        assert storage.engine.pool._recycle == -1  # a recycled connection drops a session lock
        optuna.create_study(storage=storage, study_name="pg-ok")
        assert optuna.get_all_study_names(storage) == ["pg-ok"]
        with storage.engine.connect() as conn:
            name = conn.execute(sqlalchemy.text("SHOW application_name")).scalar()
        assert name == f"reid-hpo-test {socket.gethostname()}:{os.getpid()}"
    finally:
        close_storage(storage)


@pytest.mark.postgres
def test_transaction_pool_mode_keeps_two_connections(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REID_HPO_POOL_MODE", "transaction")
    storage = open_storage(postgres_url, heartbeat=Heartbeat(interval=1, grace=3))
    try:
        assert (storage.engine.pool.size(), storage.engine.pool._max_overflow) == (2, 0)
    finally:
        close_storage(storage)


def test_unknown_pool_mode_is_a_storage_error(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REID_HPO_POOL_MODE", "statement")
    with pytest.raises(StorageError, match=r"REID_HPO_POOL_MODE='statement' must be 'session'"):
        open_storage(postgres_url)


def _storage_error(url: str) -> StorageError:
    with pytest.raises(StorageError) as info:
        open_storage(url)
    return info.value


def test_unreachable_server_gives_masked_storage_error() -> None:
    url = f"postgresql://alice:{SECRET}@127.0.0.1:1/reid"
    error = _storage_error(url)
    rendered = "".join(traceback.format_exception(error))
    assert "postgresql+psycopg2://alice:***@127.0.0.1:1/reid" in str(error)
    assert SECRET not in rendered
    assert "\n" not in str(error)


@pytest.mark.postgres
def test_missing_database_gives_masked_storage_error(postgres_url: str) -> None:
    base = postgres_url.rsplit("/", 1)[0].replace("postgres@", f"postgres:{SECRET}@")
    error = _storage_error(f"{base}/no_such_db_e1")
    assert "no_such_db_e1" in str(error)
    assert SECRET not in "".join(traceback.format_exception(error))


def test_unknown_scheme_is_a_storage_error() -> None:
    assert "no database driver" in str(_storage_error(f"mongodb://u:{SECRET}@h/db"))


def test_malformed_url_is_a_storage_error() -> None:
    assert SECRET not in str(_storage_error(f"not a url {SECRET}"))


def test_sqlite_in_a_missing_directory_is_a_storage_error(tmp_path: Path) -> None:
    error = _storage_error(f"sqlite:///{tmp_path}/missing/dir/x.db")
    assert "cannot open storage" in str(error)
