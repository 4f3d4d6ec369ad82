"""A database that holds a fleet: one connection per worker, and the first sweep after an
outage (or a start) that fails no live worker's trial. On the machine's shared server."""

from __future__ import annotations

import socket
import time
from pathlib import Path

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
from hpo.study import create_study
from tests._helpers.postgres import PG_HOST
from tests._helpers.postgres import PG_PORT
from tests._helpers.postgres import PG_USER
from tests.hpo._worker_support import spec_dict
from tests.reliability._procs import start_worker
from tests.reliability._procs import trials
from tests.reliability._procs import wait_until

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning"),
]


def _connections_named(name: str) -> int:
    """Server connections whose application_name is ``name`` (asked from another database)."""
    conn = psycopg2.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=5
    )
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (name,)
            )
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_a_training_worker_keeps_one_connection(
    tmp_path: Path, mars_root: Path, postgres_url: str
) -> None:
    raw = spec_dict(
        name="c", data_root=mars_root, artifacts=tmp_path / "runs", n_trials=1, epochs=6
    )
    create_study(StudySpec.model_validate(raw), postgres_url)
    log = tmp_path / "worker.log"
    worker = start_worker("c", postgres_url, log)
    name = f"reid-hpo-worker {socket.gethostname()}:{worker.pid}"
    seen: list[int] = []
    try:
        wait_until(
            lambda: any(t.state is TrialState.RUNNING for t in trials("c", postgres_url)),
            120,
            "a running trial",
        )
        # Sample through the training (heartbeats every second, reports every epoch).
        while worker.poll() is None and trials("c", postgres_url)[0].state is TrialState.RUNNING:
            seen.append(_connections_named(name))
            time.sleep(0.1)
        assert worker.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert len(seen) >= 10, seen  # the trial ran long enough to see heartbeats and reports
    assert max(seen) == 1, seen
    assert trials("c", postgres_url)[0].state is TrialState.COMPLETE


def test_a_storage_opened_after_an_outage_fails_no_trial_within_grace_plus_back_off(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_optuna_adapter, "RECONNECT_MAX_DELAY_S", 0.5)  # the suite's scale
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
            time.sleep(max(0.0, 2.6 - (time.monotonic() - opened)))
            optuna.storages.fail_stale_trials(seen)
            states = [t.state for t in seen.get_trials()]
            assert states == [TrialState.FAIL, TrialState.WAITING]
        finally:
            close_storage(newcomer)
    finally:
        close_storage(live)
