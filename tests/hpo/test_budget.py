"""The shared trial budget: the decision rule, trial counts, and the cross-process study lock."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial

from hpo.storage import Heartbeat
from hpo.storage import StudyLock
from hpo.storage import close_storage
from hpo.storage import lock_key
from hpo.storage import open_storage
from hpo.storage import open_study_lock
from hpo.storage._locks import FileStudyLock
from hpo.storage._locks import SessionAdvisoryLock
from hpo.storage._locks import ThreadStudyLock
from hpo.storage._locks import TransactionAdvisoryLock
from hpo.worker import Decision
from hpo.worker import TrialCounts
from hpo.worker import decide
from hpo.worker import study_started_at
from tests._helpers.waits import scaled


def _decide(counts: TrialCounts, n_trials: int | None = 4) -> Decision:
    return decide(counts, n_trials=n_trials, elapsed_s=0.0, timeout_s=None)


def test_new_trial_taken_while_finished_plus_running_below_budget() -> None:
    assert _decide(TrialCounts(complete=1, pruned=1, running=1)) is Decision.TAKE


def test_waits_when_only_pending_trials_of_others_remain() -> None:
    assert _decide(TrialCounts(complete=2, pruned=1, running=1)) is Decision.WAIT


def test_waiting_retry_taken_even_when_budget_is_fully_pending() -> None:
    # The retry is the pending trial itself: taking it does not grow the budget.
    assert _decide(TrialCounts(complete=3, waiting=1)) is Decision.TAKE


def test_done_when_complete_plus_pruned_reach_budget() -> None:
    assert _decide(TrialCounts(complete=2, pruned=2, running=1, waiting=1)) is Decision.DONE


def test_failed_trials_do_not_use_the_budget() -> None:
    assert _decide(TrialCounts(complete=3, failed=5)) is Decision.TAKE


def test_no_trial_budget_always_takes() -> None:
    assert _decide(TrialCounts(complete=100, running=8), n_trials=None) is Decision.TAKE


def test_time_budget_over_wins() -> None:
    counts = TrialCounts(complete=0)
    assert decide(counts, n_trials=4, elapsed_s=3600.0, timeout_s=3600.0) is Decision.TIMEOUT
    assert decide(counts, n_trials=4, elapsed_s=10.0, timeout_s=3600.0) is Decision.TAKE


def test_counts_read_every_state_from_the_storage() -> None:
    study = optuna.create_study()
    dist = {"x": FloatDistribution(0.0, 1.0)}
    for state in (TrialState.COMPLETE, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        value = 0.5 if state is TrialState.COMPLETE else None
        study.add_trial(
            create_trial(state=state, value=value, params={"x": 0.1}, distributions=dist)
        )
    study.enqueue_trial({"x": 0.2})
    study.ask()
    study.enqueue_trial({"x": 0.3})
    assert TrialCounts.of(study) == TrialCounts(
        complete=2, pruned=1, running=1, waiting=1, failed=1
    )


def test_started_at_is_written_once() -> None:
    study = optuna.create_study()
    first = study_started_at(study)
    time.sleep(0.01)
    # Every worker reads the same instant back, the first one included.
    assert study_started_at(study) == first
    stored = study.user_attrs["started_at"]
    assert dt.datetime.fromisoformat(stored).timestamp() == first


def test_lock_key_is_a_stable_signed_64_bit_integer() -> None:
    assert lock_key("a") == lock_key("a") != lock_key("b")
    assert -(2**63) <= lock_key("a") < 2**63


def _assert_mutually_exclusive(first: StudyLock, second: StudyLock) -> None:
    first.acquire()
    got_it = threading.Event()

    def take() -> None:
        second.acquire()
        got_it.set()

    thread = threading.Thread(target=take)
    thread.start()
    assert not got_it.wait(0.5), "second holder entered while the first held the lock"
    first.release()
    assert got_it.wait(scaled(10)), "second holder never got the released lock"
    thread.join()
    second.release()
    first.close()
    second.close()


def test_file_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    path = tmp_path / "study.db.lock"
    _assert_mutually_exclusive(FileStudyLock(path), FileStudyLock(path))


@pytest.fixture
def pg_lock(postgres_url: str) -> Iterator[Callable[[str], StudyLock]]:
    """``pg_lock(study)``: a study lock on a storage of its own (as in another worker)."""
    storages: list[optuna.storages.BaseStorage] = []

    def make(study_name: str) -> StudyLock:
        storages.append(open_storage(postgres_url, heartbeat=Heartbeat(interval=1, grace=3)))
        return open_study_lock(storages[-1], study_name)

    yield make
    for storage in storages:
        close_storage(storage)


@pytest.mark.parametrize("mode", ["session", "transaction"])
def test_postgres_advisory_lock_excludes_a_second_holder(
    mode: str, pg_lock: Callable[[str], StudyLock], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REID_HPO_POOL_MODE", mode)
    first, second = pg_lock("s"), pg_lock("s")
    expected = SessionAdvisoryLock if mode == "session" else TransactionAdvisoryLock
    assert isinstance(first, expected)
    _assert_mutually_exclusive(first, second)


def test_the_session_lock_shares_the_storages_one_connection(postgres_url: str) -> None:
    storage = open_storage(postgres_url, heartbeat=Heartbeat(interval=1, grace=3), role="lk")
    lock = open_study_lock(storage, "s")
    lock.acquire()
    try:
        study = optuna.create_study(storage=storage, study_name="s")
        trial_id = storage.get_trial_id_from_study_id_trial_number(
            storage.get_study_id_from_name("s"), study.ask().number
        )
        storage.record_heartbeat(trial_id)  # as Optuna's heartbeat thread does
        with storage.engine.connect() as conn:
            rows = conn.execute(
                sqlalchemy.text(
                    "SELECT count(DISTINCT a.pid), count(l.pid) FROM pg_stat_activity a "
                    "LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' "
                    "AND l.granted WHERE a.application_name LIKE 'lk %'"
                )
            ).one()
        assert tuple(rows) == (1, 1)  # one connection, and it holds the lock
    finally:
        lock.close()
        close_storage(storage)


def _acquire_in_thread(lock: StudyLock) -> threading.Event:
    """Start ``lock.acquire()`` in a thread; the event is set once it returns."""
    acquired = threading.Event()

    def acquire() -> None:
        lock.acquire()
        acquired.set()

    threading.Thread(target=acquire, daemon=True).start()
    return acquired


def test_postgres_locks_of_different_studies_do_not_block(
    pg_lock: Callable[[str], StudyLock],
) -> None:
    first = pg_lock("a")
    other_study = pg_lock("b")
    same_study = pg_lock("a")
    first.acquire()
    try:
        assert _acquire_in_thread(other_study).wait(scaled(10)), "another study's lock was blocked"
        same_acquired = _acquire_in_thread(same_study)
        # The control: the same study's key does block while the first holder keeps it.
        assert not same_acquired.wait(1.0)
    finally:
        first.close()
    assert same_acquired.wait(scaled(10)), "the same study's lock was not handed over on release"
    other_study.close()
    same_study.close()


def test_lock_chosen_from_the_storage(tmp_path: Path) -> None:
    for url, expected in [
        (f"sqlite:///{tmp_path / 's.db'}", FileStudyLock),
        ("sqlite:///:memory:", ThreadStudyLock),
    ]:
        storage = open_storage(url)
        try:
            assert isinstance(open_study_lock(storage, "s"), expected)
        finally:
            close_storage(storage)
    assert isinstance(open_study_lock(optuna.storages.InMemoryStorage(), "s"), ThreadStudyLock)


def test_release_without_acquire_is_a_no_op(tmp_path: Path) -> None:
    for lock in (FileStudyLock(tmp_path / "x.lock"), ThreadStudyLock()):
        lock.release()
        lock.acquire()
        lock.release()
        lock.release()


@pytest.mark.parametrize("n_trials", [1, 3])
def test_budget_never_takes_more_than_n_trials_sequentially(n_trials: int) -> None:
    counts = TrialCounts()
    taken = 0
    while _decide(counts, n_trials) is Decision.TAKE:
        taken += 1
        counts = TrialCounts(complete=counts.complete, running=counts.running + 1)
    assert taken == n_trials
    assert _decide(counts, n_trials) is Decision.WAIT
