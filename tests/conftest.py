"""Shared fixtures: a fresh PostgreSQL database, a SQLite URL, small CPU settings."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._helpers.postgres import finish_drops
from tests._helpers.postgres import fresh_database
from tests._helpers.s3 import CREDENTIALS
from tests._helpers.s3 import S3Server
from tests._helpers.s3 import s3_server

# Two cores: keep torch from oversubscribing when several test processes run.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _cpu_has_amx() -> bool:
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


# On Intel CPUs with AMX the suite runs oneDNN's AVX-512 BF16 kernels, the ones
# tests/reid_core/engine/test_onednn.py checks for reads of freed memory: the AMX kernels of
# torch 2.14.1's oneDNN (v3.12.0) read past a matrix's valid columns (oneDNN issue 5717, and
# the padded-leading-dimension fix of July 2026), which this machine cannot check. Read by
# oneDNN at its first kernel, so set before any test runs; worker processes inherit it.
if _cpu_has_amx():
    os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection built (imported modules, torch, the test items: alive for the whole
    session anyway) out of the garbage collector's sight. With the whole suite collected a full
    collection walked ~490,000 objects (0.27 CPU-s; 4 s on the loaded 2-core machine), and each
    in-process trial ends with one (hpo.worker's memory release); now they walk only what the
    tests allocate."""
    gc.collect()
    gc.freeze()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The test databases dropped in the background are gone before the session ends."""
    finish_drops()


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


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3-compatible server process (moto's), shared by the session (fails under
    CI=true when it cannot start)."""
    with s3_server(tmp_path_factory.mktemp("s3") / "server.log") as server:
        yield server


@pytest.fixture()
def s3_bucket(s3_endpoint: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on :func:`s3_endpoint`, with its credentials in this process's
    environment (where boto3 reads them, as on a worker host)."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return s3_endpoint.new_bucket()
