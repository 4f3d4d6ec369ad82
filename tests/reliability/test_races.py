"""A study deleted while another command uses it: one line and exit 2, never a traceback.

Each reader runs as a user types it (the Typer app, in process) against the real PostgreSQL
server; at a chosen storage call it waits for a real ``reid-hpo study delete`` process of
another client to finish, so the race is hit every time. A failed warm start racing a second
``create --resume`` and ``study rekey`` against a worker holding the study lock use threads
and a real process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from typer.testing import CliRunner
from typer.testing import Result

import hpo.study._lifecycle as lifecycle
from hpo.cli import app
from hpo.spec import load_spec
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.storage import open_study_lock
from hpo.storage._optuna_adapter import ReconnectingRDBStorage
from hpo.study import StudyAttr
from hpo.study import create_study
from hpo.study import delete_study
from tests._helpers.postgres import _admin_connect
from tests._helpers.postgres import fresh_database
from tests._helpers.waits import scaled
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import spec_dict
from tests.reliability._procs import run_cli

pytestmark = pytest.mark.postgres


def _write_spec(tmp_path: Path, mars_root: Path, name: str, **extra: Any) -> Path:
    spec = spec_dict(name=name, data_root=mars_root, artifacts=tmp_path / "runs")
    spec.update(extra)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(spec, default=str))), encoding="utf-8")
    return path


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    (line,) = [line for line in result.output.splitlines() if line.strip()]
    assert line.startswith("Error: "), line
    return line


@pytest.fixture()
def url() -> Iterator[str]:
    with fresh_database() as fresh:
        yield fresh


def _create(spec_file: Path, url: str) -> None:
    result = CliRunner().invoke(app, ["study", "create", str(spec_file), "--storage", url])
    assert result.exit_code == 0, result.output


def _study_with_trials(url: str, spec_file: Path) -> None:
    """The study of ``spec_file`` with 2 finished trials."""
    spec = load_spec(spec_file)
    storage = open_storage(url)
    try:
        create_study(spec, storage)
    finally:
        close_storage(storage)
    study = optuna.load_study(study_name=spec.name, storage=url)
    for value in (0.2, 0.4):
        trial = study.ask({"sigma": optuna.distributions.FloatDistribution(0.1, 1.0)})
        trial.report(value, 0)
        study.tell(trial, value)


def _deleted_by_another_client_at(
    monkeypatch: pytest.MonkeyPatch, method: str, name: str, url: str, *, process: bool = False
) -> list[str]:
    """At the first ``method`` call of this process's storage, wait for another client to
    delete study ``name``: ``reid-hpo study delete NAME --yes`` in another process, or
    (faster) ``delete_study`` on its own connection in another thread. Returns what it did."""
    real: Callable[..., Any] = getattr(ReconnectingRDBStorage, method)
    done: list[str] = []

    def delete_in_a_thread() -> None:
        done.append(f"deleted {delete_study(name, url).n_trials} trials")

    started = threading.Event()  # the deleting thread's own storage calls pass through

    def racing(self: ReconnectingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        if not started.is_set():
            started.set()
            if process:
                code = run_cli("study", "delete", name, "--yes", env=child_env(url)).returncode
                done.append(f"exit {code}")
            else:
                other = threading.Thread(target=delete_in_a_thread)
                other.start()
                other.join(60)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ReconnectingRDBStorage, method, racing)
    return done


@pytest.mark.parametrize(
    ("words", "method"),
    [
        (["study", "status", "rd"], "get_all_trials"),
        (["study", "status", "rd", "--format", "json"], "get_study_user_attrs"),
        (["study", "best", "rd"], "get_study_directions"),
        (["study", "export", "rd", "--format", "csv"], "get_all_trials"),
        (["study", "report", "rd", "--out", "{tmp}/report.html"], "get_study_user_attrs"),
        (["study", "tensorboard", "rd"], "get_all_trials"),
        (["study", "delete", "rd", "--yes"], "get_n_trials"),
    ],
    ids=["status", "status-json", "best", "export", "report", "tb", "delete"],
)
def test_a_study_deleted_while_it_is_read_is_one_line(
    words: list[str],
    method: str,
    url: str,
    tmp_path: Path,
    mars_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _study_with_trials(url, _write_spec(tmp_path, mars_root, "rd"))
    process = words == ["study", "status", "rd"]  # one real process; threads are faster
    done = _deleted_by_another_client_at(monkeypatch, method, "rd", url, process=process)
    argv = [word.replace("{tmp}", str(tmp_path)) for word in words]
    line = _one_error_line(CliRunner().invoke(app, [*argv, "--storage", url]))
    # The other client's delete ran, in the middle of this command.
    assert done == ["exit 0" if process else "deleted 2 trials"]
    command = " ".join(words[:2])
    assert line == f"Error: study 'rd' was deleted while `{command}` read it" or (
        command == "study delete"
        and line == "Error: study 'rd' was deleted while `study delete` ran"
    ), line
    assert not (tmp_path / "report.html").exists()


def test_study_list_leaves_out_a_study_deleted_while_it_is_listed(
    url: str, tmp_path: Path, mars_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _study_with_trials(url, _write_spec(tmp_path, mars_root, "gone"))
    _study_with_trials(url, _write_spec(tmp_path, mars_root, "kept"))
    done = _deleted_by_another_client_at(monkeypatch, "get_all_trials", "gone", url)
    result = CliRunner().invoke(app, ["study", "list", "--storage", url, "--format", "json"])
    assert result.exit_code == 0, result.output
    assert done == ["deleted 2 trials"]
    assert [info["name"] for info in json.loads(result.output)] == ["kept"]


def test_create_resume_racing_a_failed_warm_start_gets_the_real_reason(
    url: str, tmp_path: Path, mars_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creator A's warm start fails (its source study does not exist) while B's ``create
    --resume`` waits for A's spec: B creates the study itself and meets the same failure, in
    one line naming it; no study is left behind."""
    spec_file = _write_spec(
        tmp_path, mars_root, "ws", warm_start={"from_study": {"name": "src", "top_k": 1}}
    )
    spec = load_spec(spec_file)
    a_created, b_waiting = threading.Event(), threading.Event()

    real_enqueue, real_read_spec = lifecycle.enqueue_warm_start, lifecycle.read_spec

    def slow_enqueue(*args: Any) -> None:
        if threading.get_ident() == creator_thread.ident:
            a_created.set()
            assert b_waiting.wait(scaled(30))  # B now polls for A's spec
        real_enqueue(*args)

    def watched_read_spec(*args: Any) -> Any:
        found = real_read_spec(*args)
        if found is None and threading.get_ident() != creator_thread.ident:
            b_waiting.set()
        return found

    monkeypatch.setattr(lifecycle, "enqueue_warm_start", slow_enqueue)
    monkeypatch.setattr(lifecycle, "read_spec", watched_read_spec)
    failures: list[BaseException] = []

    def create_a() -> None:
        storage = open_storage(url)
        try:
            create_study(spec, storage, resume=True)
        except BaseException as exc:
            failures.append(exc)
        finally:
            close_storage(storage)

    creator_thread = threading.Thread(target=create_a)
    creator_thread.start()
    assert a_created.wait(scaled(30))
    line = _one_error_line(
        CliRunner().invoke(app, ["study", "create", str(spec_file), "--resume", "--storage", url])
    )
    creator_thread.join(30)
    assert [type(exc).__name__ for exc in failures] == ["StudyNotFoundError"]
    assert "'src'" in line and "no study" in line, line
    assert str(failures[0]).split(";")[0] in line
    assert optuna.get_all_study_names(url) == []


def test_rekey_waits_for_the_study_lock(url: str, tmp_path: Path, mars_root: Path) -> None:
    """A worker joining the copy holds the study lock: ``study rekey`` (a real process)
    waits for it, then gives the copy its own uuid."""
    spec_file = _write_spec(tmp_path, mars_root, "rk")
    assert (
        CliRunner().invoke(app, ["study", "create", str(spec_file), "--storage", url]).exit_code
        == 0
    )
    original_db = url.rsplit("/", 1)[1]
    copy_db = f"{original_db}_copy"
    copy_url = url.rsplit("/", 1)[0] + f"/{copy_db}"
    conn = _admin_connect()
    try:
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{copy_db}" TEMPLATE "{original_db}"')
        old_uuid = _uuid(copy_url)
        worker_storage = open_storage(copy_url)  # a worker joining the copy holds its lock
        lock = open_study_lock(worker_storage, "rk")
        lock.acquire()
        try:
            rekey = subprocess.Popen(
                [sys.executable, "-m", "hpo.cli", "study", "rekey", "rk", "--storage", copy_url],
                cwd=REPO_ROOT,
                env=child_env(copy_url),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            _wait_for_lock_waiter(copy_db, rekey)
            assert rekey.poll() is None and _uuid(copy_url) == old_uuid
        finally:
            lock.close()
            close_storage(worker_storage)
        output, _ = rekey.communicate(timeout=scaled(60))
        assert rekey.returncode == 0, output
        assert _uuid(copy_url) != old_uuid and _uuid(url) == old_uuid
    finally:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{copy_db}" WITH (FORCE)')
        conn.close()


def _uuid(url: str) -> str:
    study = optuna.load_study(study_name="rk", storage=url)
    return str(study.user_attrs[StudyAttr.UUID])


def _wait_for_lock_waiter(database: str, process: subprocess.Popen[str]) -> None:
    """Until a session of ``database`` waits for an advisory lock (the rekey process)."""
    deadline = time.monotonic() + scaled(60)
    conn = _admin_connect()
    try:
        while time.monotonic() < deadline and process.poll() is None:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
                    "WHERE l.locktype = 'advisory' AND NOT l.granted AND d.datname = %s",
                    (database,),
                )
                row = cur.fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.1)
    finally:
        conn.close()
    output = process.communicate(timeout=5)[0] if process.poll() is not None else ""
    raise AssertionError(f"rekey never waited for the study lock: {output}")
