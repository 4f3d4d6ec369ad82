"""OwnedTrialStorage: Optuna internals it needs, the WAITING lookup, stale copies, reconnects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextlib import nullcontext

import optuna
import pytest
import sqlalchemy.exc
from optuna.trial import TrialState
from sqlalchemy import event

from hpo._trial_cache import OwnedTrialStorage
from hpo._trial_cache import check_optuna_internals
from hpo.storage import close_storage
from hpo.storage import open_storage

SPACE = {
    "x": optuna.distributions.FloatDistribution(-1.0, 1.0),
    "n": optuna.distributions.IntDistribution(1, 8),
}


@pytest.fixture()
def cached(sqlite_url: str) -> Iterator[tuple[optuna.Study, OwnedTrialStorage]]:
    storage = OwnedTrialStorage(open_storage(sqlite_url, heartbeat=False))
    study = optuna.create_study(
        study_name="s", storage=storage, sampler=optuna.samplers.RandomSampler(0)
    )
    yield study, storage
    close_storage(storage.backend)


@contextmanager
def _statements(storage: OwnedTrialStorage) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        seen.append(statement)

    event.listen(storage.backend.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(storage.backend.engine, "before_cursor_execute", record)


def _fail_elsewhere(url: str, trial: optuna.Trial) -> None:
    """What a worker failing a heartbeat-stale trial does, from another storage."""
    other = open_storage(url, heartbeat=False)
    try:
        other.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    finally:
        close_storage(other)


def test_installed_optuna_has_the_internals_the_cache_relies_on() -> None:
    check_optuna_internals()


def test_missing_optuna_internal_is_named_with_the_supported_versions(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delattr(optuna.storages.RDBStorage, "_get_trials")
    with pytest.raises(RuntimeError, match=r"optuna>=5.0,<5.1.*RDBStorage\._get_trials"):
        OwnedTrialStorage(optuna.storages.RDBStorage(sqlite_url))


def test_waiting_lookup_is_one_statement_when_no_trial_waits(
    cached: tuple[optuna.Study, OwnedTrialStorage], sqlite_url: str
) -> None:
    study, storage = cached
    study.tell(study.ask(SPACE), 1.0)
    with _statements(storage) as seen:
        assert storage.get_all_trials(study._study_id, states=(TrialState.WAITING,)) == []
    assert len(seen) == 1
    optuna.load_study(study_name="s", storage=sqlite_url).enqueue_trial({"x": 0.5, "n": 3})
    (waiting,) = storage.get_all_trials(study._study_id, states=(TrialState.WAITING,))
    assert (waiting.number, waiting.state) == (1, TrialState.WAITING)
    assert study.ask(SPACE).params == {"x": 0.5, "n": 3}


def test_a_trial_failed_elsewhere_is_read_back_failed_after_the_refused_write(
    cached: tuple[optuna.Study, OwnedTrialStorage], sqlite_url: str
) -> None:
    study, storage = cached
    trial = study.ask(SPACE)
    _fail_elsewhere(sqlite_url, trial)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        trial.set_user_attr("epoch", 1)
    assert storage.get_trial(trial._trial_id).state is TrialState.FAIL


def test_batched_params_of_a_trial_failed_elsewhere_are_refused(
    cached: tuple[optuna.Study, OwnedTrialStorage], sqlite_url: str
) -> None:
    study, storage = cached
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError), storage.batched_params():
        trial = study.ask(SPACE)
        _fail_elsewhere(sqlite_url, trial)
    assert storage.backend.get_trial(trial._trial_id).params == {}
    assert storage.get_trial(trial._trial_id).state is TrialState.FAIL


def test_optimize_of_a_trial_failed_elsewhere_ends_as_with_plain_optuna(
    cached: tuple[optuna.Study, OwnedTrialStorage], sqlite_url: str
) -> None:
    study, _ = cached

    def zombie(trial: optuna.Trial) -> float:
        _fail_elsewhere(sqlite_url, trial)
        trial.report(0.5, step=0)
        return 0.5

    with pytest.raises(ValueError, match="Cannot tell a FAIL trial"):
        study.optimize(zombie, n_trials=1)


def test_batched_params_are_retried_when_the_database_drops_the_connection(
    cached: tuple[optuna.Study, OwnedTrialStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    study, storage = cached
    insert = storage._insert_params
    calls: list[int] = []

    def drop_first(pending: list[object]) -> None:
        calls.append(len(pending))
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("server closed"))
        insert(pending)  # type: ignore[arg-type]

    monkeypatch.setattr(storage, "_insert_params", drop_first)
    with storage.batched_params():
        trial = study.ask(SPACE)
    assert calls == [2, 2]
    assert storage.backend.get_trial(trial._trial_id).params == trial.params


def test_own_finished_trials_leave_the_unfinished_candidates(
    cached: tuple[optuna.Study, OwnedTrialStorage],
) -> None:
    study, storage = cached
    for _ in range(5):
        with storage.batched_params():
            trial = study.ask(SPACE)
        study.tell(trial, 0.0)
    # Only WAITING lookups ran (no trial read): the candidates must not grow with the study.
    assert storage._created[study._study_id] == set()
    assert storage.get_all_trials(study._study_id, states=(TrialState.RUNNING,)) == []


def test_a_tell_of_a_trial_failed_elsewhere_is_refused_and_stores_no_value(
    cached: tuple[optuna.Study, OwnedTrialStorage], sqlite_url: str
) -> None:
    study, storage = cached
    trial = study.ask(SPACE)
    _fail_elsewhere(sqlite_url, trial)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError, match="Trial#0 has already"):
        study.tell(trial, 1.0)
    stored = storage.backend.get_trial(trial._trial_id)
    assert (stored.state, stored.values) == (TrialState.FAIL, None)
    assert storage.get_trial(trial._trial_id).state is TrialState.FAIL


def _rounds(study: optuna.Study, storage: optuna.storages.BaseStorage, values: list[float]) -> None:
    """One ask/tell round per value (params written in one batch when possible), then a
    pruned one."""
    for value in [*values, None]:
        batch = (
            storage.batched_params() if isinstance(storage, OwnedTrialStorage) else nullcontext()
        )
        with batch:
            trial = study.ask(SPACE)
        if value is None:
            study.tell(trial, state=TrialState.PRUNED)
        else:
            study.tell(trial, value)


@pytest.mark.postgres
def test_postgres_rounds_store_what_plain_optuna_stores_in_fewer_statements(
    postgres_url: str,
) -> None:
    values = [0.5, float("inf"), -float("inf"), -2.0]
    plain_storage = open_storage(postgres_url, heartbeat=False)
    storage = OwnedTrialStorage(open_storage(postgres_url, heartbeat=False))
    try:
        plain = optuna.create_study(
            study_name="plain", storage=plain_storage, sampler=optuna.samplers.RandomSampler(0)
        )
        _rounds(plain, plain_storage, values)
        study = optuna.create_study(
            study_name="cached", storage=storage, sampler=optuna.samplers.RandomSampler(0)
        )
        with _statements(storage) as seen:
            _rounds(study, storage, values)
        reader = open_storage(postgres_url, heartbeat=False)
        try:
            expected, got = (
                reader.get_all_trials(reader.get_study_id_from_name(name))
                for name in ("plain", "cached")
            )
        finally:
            close_storage(reader)
        keys = ("number", "state", "values", "distributions")
        assert [[getattr(t, k) for k in keys] for t in got] == [
            [getattr(t, k) for k in keys] for t in expected
        ]
        # The copies this process kept carry the times the database stored.
        for trial in got:
            copy = storage.get_trial(trial._trial_id)
            assert (copy.datetime_start, copy.datetime_complete) == (
                trial.datetime_start,
                trial.datetime_complete,
            )
        # Per round: waiting lookup 1, create 2, params 2 (+ 2 first-use distribution checks
        # in the first round), tell 2 (1 for the pruned trial: no value).
        assert len(seen) == 7 * len(values) + 2 + 6
    finally:
        close_storage(plain_storage)
        close_storage(storage.backend)


@pytest.mark.postgres
def test_postgres_concurrent_creators_get_distinct_contiguous_numbers(postgres_url: str) -> None:
    setup = open_storage(postgres_url, heartbeat=False)
    optuna.create_study(study_name="s", storage=setup)
    close_storage(setup)
    storages = [OwnedTrialStorage(open_storage(postgres_url, heartbeat=False)) for _ in range(4)]
    study_id = storages[0].get_study_id_from_name("s")
    start = threading.Barrier(len(storages))

    def create(storage: OwnedTrialStorage) -> list[int]:
        start.wait()
        return [storage.create_new_trial(study_id) for _ in range(25)]

    try:
        with ThreadPoolExecutor(len(storages)) as pool:
            ids = [i for batch in pool.map(create, storages) for i in batch]
        numbers = [storages[0].backend.get_trial(i).number for i in ids]
    finally:
        for storage in storages:
            close_storage(storage.backend)
    assert sorted(numbers) == list(range(100))
    # Numbers follow trial ids, as Optuna's own count of the earlier trials gives them.
    assert [n for _, n in sorted(zip(ids, numbers, strict=True))] == list(range(100))
