"""``reid-hpo bench storage`` (quick) and the owned-trial storage cache it measures."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo._trial_cache import OwnedTrialStorage
from hpo.bench._storage import ENV_PG_ADMIN_URL
from hpo.bench._storage import StorageBenchConfig
from hpo.cli import app
from hpo.storage import close_storage
from hpo.storage import open_storage
from tests._helpers.postgres import PG_HOST
from tests._helpers.postgres import PG_PORT
from tests._helpers.postgres import PG_USER
from tests._helpers.postgres import require_postgres

SPACE = {
    "x": optuna.distributions.FloatDistribution(-1.0, 1.0),
    "n": optuna.distributions.IntDistribution(1, 8),
    "c": optuna.distributions.CategoricalDistribution(["a", "b"]),
}


@pytest.mark.postgres
@pytest.mark.slow
def test_bench_storage_quick_writes_json_without_duplicates_or_losses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    require_postgres()
    monkeypatch.setenv(ENV_PG_ADMIN_URL, f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/postgres")
    result = CliRunner().invoke(app, ["bench", "storage", "--quick", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "storage.json").read_text())
    scenarios = data["details"]["scenarios"]
    expected = StorageBenchConfig.quick().scenarios()
    assert [(s["backend"], s["storage"]) for s in scenarios] == [
        (e.backend, e.storage) for e in expected
    ]
    for s in scenarios:
        integrity = s["integrity"]
        assert integrity["ok"], integrity
        assert integrity["duplicate_numbers"] == 0 and integrity["lost_trials"] == 0
        assert integrity["stored"] == integrity["complete"] == sum(integrity["per_worker"])
        assert integrity["stored"] == s["trials"]
        assert {"p50", "p95"} <= set(s["ask_ms"]) and s["trials_per_s"] > 0
        assert [b["first"] for b in s["bands"]] == list(range(0, s["trials"], 50))
    assert {t["description"] for t in data["targets"] if t["met"]} >= {
        "duplicated + lost + wrong trials (all runs)"
    }


def _study(url: str, cached: bool) -> tuple[optuna.Study, optuna.storages.BaseStorage]:
    storage = open_storage(url, heartbeat=False)
    wrapped = OwnedTrialStorage(storage) if cached else storage
    study = optuna.create_study(
        study_name="s", storage=wrapped, sampler=optuna.samplers.RandomSampler(0)
    )
    return study, wrapped


def _stored(url: str) -> list[optuna.trial.FrozenTrial]:
    storage = open_storage(url, heartbeat=False)
    try:
        return optuna.load_study(study_name="s", storage=storage).get_trials(deepcopy=False)
    finally:
        close_storage(storage)


def _ask_report_tell(study: optuna.Study, storage: optuna.storages.BaseStorage) -> None:
    for _ in range(3):
        if isinstance(storage, OwnedTrialStorage):
            with storage.batched_params():
                trial = study.ask(SPACE)
        else:
            trial = study.ask(SPACE)
        trial.set_user_attr("seed", [trial.number, "x"])
        trial.report(0.5, step=0)
        frozen = study.tell(trial, trial.params["x"] + trial.params["n"])
        assert frozen.params == trial.params and frozen.state is TrialState.COMPLETE


def test_owned_trial_storage_stores_what_plain_optuna_stores(tmp_path: Path) -> None:
    urls = {c: f"sqlite:///{tmp_path / f'{c}.db'}" for c in (False, True)}
    for cached, url in urls.items():
        study, storage = _study(url, cached)
        _ask_report_tell(study, storage)
    plain, cached = _stored(urls[False]), _stored(urls[True])
    keys = ("number", "state", "params", "distributions", "values", "user_attrs")
    assert [[getattr(t, k) for k in keys] for t in cached] == [
        [getattr(t, k) for k in keys] for t in plain
    ]
    assert [t.intermediate_values for t in cached] == [{0: 0.5}] * 3


def test_batched_params_reach_the_database_at_the_end_of_the_block(sqlite_url: str) -> None:
    study, storage = _study(sqlite_url, cached=True)
    assert isinstance(storage, OwnedTrialStorage)
    with storage.batched_params():
        trial = study.ask(SPACE)
        assert storage.backend.get_trial(trial._trial_id).params == {}
    assert storage.backend.get_trial(trial._trial_id).params == trial.params


def test_error_inside_batched_block_writes_no_params(sqlite_url: str) -> None:
    study, storage = _study(sqlite_url, cached=True)
    assert isinstance(storage, OwnedTrialStorage)
    with pytest.raises(RuntimeError), storage.batched_params():
        trial = study.ask(SPACE)
        raise RuntimeError("boom")
    assert storage.backend.get_trial(trial._trial_id).params == {}


def test_incompatible_distribution_is_refused_in_a_batch(sqlite_url: str) -> None:
    study, storage = _study(sqlite_url, cached=True)
    assert isinstance(storage, OwnedTrialStorage)
    study.tell(study.ask(SPACE), 0.0)
    with pytest.raises(ValueError), storage.batched_params():
        study.ask({"c": optuna.distributions.CategoricalDistribution(["z"])})


def test_trial_failed_by_another_process_is_noticed_at_the_next_write(sqlite_url: str) -> None:
    study, _ = _study(sqlite_url, cached=True)
    trial = study.ask(SPACE)
    other = open_storage(sqlite_url, heartbeat=False)
    try:
        other.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    finally:
        close_storage(other)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        trial.report(1.0, step=1)


def test_unfinished_trials_lookup_matches_the_full_scan(sqlite_url: str) -> None:
    study, storage = _study(sqlite_url, cached=True)
    assert isinstance(storage, OwnedTrialStorage)
    _ask_report_tell(study, storage)
    running = study.ask(SPACE)
    other = optuna.load_study(study_name="s", storage=sqlite_url)
    other.enqueue_trial({"x": 0.25, "n": 2, "c": "b"})
    study_id = study._study_id
    for states in (
        (TrialState.WAITING,),
        (TrialState.RUNNING,),
        (TrialState.WAITING, TrialState.RUNNING),
    ):
        fast = storage.get_all_trials(study_id, deepcopy=False, states=states)
        full = [t for t in storage.get_all_trials(study_id, deepcopy=False) if t.state in states]
        assert [t.number for t in fast] == [t.number for t in full]
    assert [t.number for t in storage.get_all_trials(study_id, states=(TrialState.RUNNING,))] == [
        running.number
    ]
    popped = study.ask(SPACE)
    assert popped.params == {"x": 0.25, "n": 2, "c": "b"}
