"""A database that holds a fleet: one connection per worker, workers through PgBouncer in
transaction pooling mode, and the first stale sweep after an outage (or a start) that fails no
live worker's trial. On the machine's shared server."""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import psycopg2
import pytest
import sqlalchemy
from optuna.trial import TrialState

from hpo.spec import StudySpec
from hpo.storage import Heartbeat
from hpo.storage import _optuna_adapter
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.storage._pooler_probe import shares_server_connections
from hpo.study import create_study
from tests._helpers.pgbouncer import PgBouncer
from tests._helpers.pgbouncer import require_pgbouncer
from tests._helpers.postgres import PG_HOST
from tests._helpers.postgres import PG_PORT
from tests._helpers.postgres import PG_USER
from tests._helpers.waits import scaled
from tests._helpers.waits import slow_factor
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import spec_dict
from tests.reliability._procs import assert_study_consistent
from tests.reliability._procs import start_worker
from tests.reliability._procs import trials

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning"),
]


def _count_connections(where: str, value: str) -> int | None:
    """Server connections with ``where`` (a pg_stat_activity column) = ``value``, asked from
    the ``postgres`` database so that the question is not counted; None when the shared
    server refuses the question (other suites can fill its ``max_connections``)."""
    try:
        conn = psycopg2.connect(
            host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5
        )
    except psycopg2.OperationalError:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {where} = %s", (value,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_training_worker_keeps_one_connection(
    tmp_path: Path, mars_root: Path, postgres_url: str
) -> None:
    raw = spec_dict(
        name="c", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=1, epochs=30
    )
    create_study(StudySpec.model_validate(raw), postgres_url)
    log = tmp_path / "worker.log"
    worker = start_worker("c", postgres_url, log)
    name = f"reid-hpo-worker {socket.gethostname()}:{worker.pid}"
    seen: list[int] = []
    try:
        # Past the worker's start (its schema check opens a connection of its own) once it
        # has taken the trial: a trial seen in any state, so that a poll stalled on a loaded
        # machine past the whole (short) trial fails on the sample count below, not here.
        wait_until(lambda: bool(trials("c", postgres_url)), 120, "the worker's trial")
        # Sample through the training (heartbeats every second, reports every epoch).
        while worker.poll() is None and trials("c", postgres_url)[0].state is TrialState.RUNNING:
            count = _count_connections("application_name", name)
            if count is not None:
                seen.append(count)
            time.sleep(0.1)
        assert worker.wait(timeout=scaled(120)) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert len(seen) >= 5, seen  # samples over several heartbeats and reports
    assert max(seen) == 1, seen
    assert trials("c", postgres_url)[0].state is TrialState.COMPLETE


def test_a_storage_opened_after_an_outage_fails_no_trial_within_grace_plus_back_off(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite's scale of the 10 s back-off; longer on a loaded machine, where opening the
    # storage and the first sweep alone may take longer than 0.5 s + the grace.
    back_off = 0.5 * slow_factor()
    monkeypatch.setattr(_optuna_adapter, "RECONNECT_MAX_DELAY_S", back_off)
    heartbeat = Heartbeat(interval=1, grace=2)
    live = open_storage(postgres_url, heartbeat=heartbeat)
    try:
        study = optuna.create_study(storage=live, study_name="o")
        number = study.ask().number
        trial_id = live.get_trial_id_from_study_id_trial_number(
            live.get_study_id_from_name("o"), number
        )
        live.record_heartbeat(trial_id)
        # The database was down for longer than the grace: the live worker's last heartbeat is
        # old, and its heartbeat thread has not yet got the database back.
        with live.engine.connect() as conn:
            conn.execute(
                sqlalchemy.text(
                    "UPDATE trial_heartbeats SET heartbeat = heartbeat - INTERVAL '30 s'"
                )
            )
            conn.commit()
        newcomer = open_storage(postgres_url, heartbeat=heartbeat)  # a worker started now
        opened = time.monotonic()
        try:
            seen = optuna.load_study(study_name="o", storage=newcomer)
            optuna.storages.fail_stale_trials(seen)
            assert [t.state for t in seen.get_trials()] == [TrialState.RUNNING]
            # Past grace + back-off, a trial still silent is a dead worker's: failed, retried.
            time.sleep(max(0.0, 2 + back_off + 0.1 - (time.monotonic() - opened)))
            optuna.storages.fail_stale_trials(seen)
            states = [t.state for t in seen.get_trials()]
            assert states == [TrialState.FAIL, TrialState.WAITING]
        finally:
            close_storage(newcomer)
    finally:
        close_storage(live)


@pytest.fixture
def bouncer() -> Iterator[PgBouncer]:
    """PgBouncer in transaction pooling mode with two server connections, before the shared
    server (the smallest pool the transaction-level study lock works with: the holder's lock
    transaction keeps one, its own operations need the other)."""
    require_pgbouncer()
    server = PgBouncer(PG_PORT, pool_mode="transaction", pool_size=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_two_workers_finish_a_study_through_pgbouncer_in_transaction_mode(
    tmp_path: Path, mars_root: Path, postgres_url: str, bouncer: PgBouncer
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    url = bouncer.url(database)
    raw = spec_dict(name="b", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=4)
    create_study(StudySpec.model_validate(raw), url)
    log = tmp_path / "workers.log"
    workers = [start_worker("b", url, log, REID_HPO_POOL_MODE="transaction") for _ in range(2)]
    peak = 0
    try:
        while any(w.poll() is None for w in workers):
            peak = max(peak, _count_connections("datname", database) or 0)
            time.sleep(0.1)
        codes = [w.wait() for w in workers]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    assert codes == [0, 0], log.read_text()[-4000:]
    found = assert_study_consistent("b", postgres_url, n_trials=4)
    assert [t.state for t in found] == [TrialState.COMPLETE] * 4
    assert len({t.user_attrs["worker"] for t in found}) == 2  # both workers took trials
    assert 1 <= peak <= 2  # PgBouncer's pool: the server never saw more connections


def test_a_worker_behind_a_transaction_pooler_without_the_setting_is_refused_in_one_line(
    tmp_path: Path, mars_root: Path, postgres_url: str, bouncer: PgBouncer
) -> None:
    url = bouncer.url(postgres_url.rsplit("/", 1)[1])
    raw = spec_dict(name="r", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=1)
    create_study(StudySpec.model_validate(raw), url)
    log = tmp_path / "worker.log"
    worker = start_worker("r", url, log, REID_HPO_POOL_MODE="")  # the setting left out
    assert worker.wait(timeout=scaled(120)) == 2, log.read_text()[-4000:]
    (line,) = log.read_text().strip().splitlines()
    assert "pooler in transaction mode" in line and "REID_HPO_POOL_MODE=transaction" in line
    assert trials("r", postgres_url) == []  # refused before any trial


@pytest.mark.parametrize(
    ("pool_mode", "proven"), [(None, False), ("session", False), ("transaction", True)]
)
def test_the_pooler_probe_proves_transaction_pooling_and_nothing_else(
    pool_mode: str | None, proven: bool, postgres_url: str, record_property: Any
) -> None:
    database = postgres_url.rsplit("/", 1)[1]
    server = None
    if pool_mode is not None:
        require_pgbouncer()
        server = PgBouncer(PG_PORT, pool_mode=pool_mode, pool_size=2)
        server.start()
    url = sqlalchemy.make_url(server.url(database) if server else postgres_url)
    try:
        answers = [shares_server_connections(url, application_name="probe test") for _ in range(10)]
        if server is not None and pool_mode == "session":
            # A full session pool (two clients hold both server connections): no proof, and
            # the probe's second connection waits no longer than its bound.
            held = [
                psycopg2.connect(server.url(database).replace("+psycopg2", "")) for _ in range(2)
            ]
            try:
                for conn in held:
                    conn.cursor().execute("SELECT 1")
                started = time.monotonic()
                assert not shares_server_connections(url, application_name="probe test", wait_s=1)
                assert time.monotonic() - started < scaled(3)
            finally:
                for conn in held:
                    conn.close()
    finally:
        if server is not None:
            server.stop()
    record_property("proofs_of_10", sum(answers))
    assert answers == [proven] * 10


def test_a_burst_of_storage_writes_does_not_starve_the_heartbeat(postgres_url: str) -> None:
    """The loop and the heartbeat thread share one connection; before turns were fair, a loop
    writing for 12 s kept every heartbeat out for 12 s."""
    storage = open_storage(postgres_url, heartbeat=Heartbeat(interval=1, grace=3))
    study = optuna.create_study(storage=storage, study_name="h")
    beats: list[float] = []

    def watch(trial_id: int, stop: threading.Event) -> None:
        engine = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
        query = sqlalchemy.text(
            "SELECT extract(epoch FROM heartbeat) FROM trial_heartbeats WHERE trial_id = :t"
        )
        try:
            while not stop.is_set():
                with engine.connect() as conn:
                    beat = conn.execute(query, {"t": trial_id}).scalar()
                if beat is not None and (not beats or beat != beats[-1]):
                    beats.append(float(beat))
                time.sleep(0.05)
        finally:
            engine.dispose()

    def burst(trial: optuna.Trial) -> float:
        stop = threading.Event()
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name("h"), trial.number
        )
        watcher = threading.Thread(target=watch, args=(trial_id, stop))
        watcher.start()
        end = time.monotonic() + 5
        i = 0
        while time.monotonic() < end:
            trial.set_user_attr(f"a{i % 20}", i)
            i += 1
        stop.set()
        watcher.join()
        return 0.0

    try:
        study.optimize(burst, n_trials=1)
    finally:
        close_storage(storage)
    gaps = [b - a for a, b in itertools.pairwise(beats)]
    assert len(beats) >= 4, beats
    assert max(gaps) < 2.5, gaps  # 1 s interval: never near the 3 s grace


def test_a_worker_paused_inside_a_transaction_blocks_the_stale_sweep_no_longer_than_the_grace(
    postgres_url: str, record_property: Any
) -> None:
    """A worker stopped between inserting an epoch's intermediate value and committing it
    holds a key-share lock on its trial's row; the worker failing that trial as stale waited
    for it for as long as the pause lasted (CI-style SIGSTOP: for ever)."""
    paused = open_storage(postgres_url, heartbeat=Heartbeat(interval=1, grace=1))
    sweeper = open_storage(postgres_url)
    try:
        study = optuna.create_study(storage=paused, study_name="p")
        trial_id = study.ask()._trial_id
        held = paused.engine.connect()
        held.execute(  # what Optuna's report does before its commit; the pause comes here
            sqlalchemy.text(
                "INSERT INTO trial_intermediate_values "
                "(trial_id, step, intermediate_value, intermediate_value_type) "
                "VALUES (:trial_id, 0, 0.5, 'FINITE')"
            ),
            {"trial_id": trial_id},
        )
        failed = threading.Event()

        def fail_as_stale() -> None:
            sweeper.set_trial_state_values(trial_id, TrialState.FAIL)
            failed.set()

        started = time.monotonic()
        threading.Thread(target=fail_as_stale, daemon=True).start()
        try:
            assert failed.wait(scaled(15)), "the sweep still waits for the paused transaction"
            seconds = time.monotonic() - started
        finally:
            # The pause ends: without the timeout this releases the lock; with it, the
            # session was ended meanwhile and closing it may say so.
            with contextlib.suppress(sqlalchemy.exc.DBAPIError):
                held.close()
        # The worker, back, goes on with a fresh connection and sees what the sweep did.
        assert paused.get_trial(trial_id).state is TrialState.FAIL
    finally:
        close_storage(sweeper)
        close_storage(paused)
    record_property("seconds_the_sweep_waited", round(seconds, 1))
