"""Study lifecycle on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from hpo.errors import NoCompletedTrialError
from hpo.errors import SpecError
from hpo.errors import StudyExistsError
from hpo.errors import StudyNotFoundError
from hpo.search import suggest
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.study import MARKER_NAME
from hpo.study import StudyAttr
from hpo.study import best_trial_of
from hpo.study import create_study
from hpo.study import delete_study
from hpo.study import export_trials
from hpo.study import list_studies
from hpo.study import load_study
from hpo.study import spec_of
from hpo.study import study_status
from tests._helpers.postgres import fresh_database
from tests._helpers.specs import tiny_spec
from tests._helpers.waits import scaled

_BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=_BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(scope="module", params=_BACKENDS)
def populated(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A study 'tiny' with trials (see _populate), shared by the read-only tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('populated') / 'study.db'}"
        create_study(tiny_spec(), url)
        _populate(url)
        yield url
        return
    with fresh_database() as url:
        create_study(tiny_spec(), url)
        _populate(url)
        yield url


def _populate(url: str) -> None:
    """3 trials: complete (0.4), complete (0.7, with attrs), pruned; a 4th left RUNNING."""
    storage = open_storage(url)
    try:
        study, spec = load_study("tiny", storage)
        for value in (0.4, 0.7):
            trial = study.ask()
            suggest(trial, spec)
            trial.report(value / 2, step=0)
            trial.set_user_attr("val_metrics", {"map": value, "rank1": value + 0.1})
            trial.set_user_attr("cmc", [value, 0.9])
            trial.set_user_attr("checkpoint_dir", f"runs/tiny/trial_{trial.number}")
            trial.set_user_attr("seed", spec.seed + trial.number)
            study.tell(trial, value)
        pruned = study.ask()
        suggest(pruned, spec)
        pruned.report(0.01, step=0)
        study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
        running = study.ask()
        suggest(running, spec)
        running.set_user_attr("worker", "gpu-host:1234")
        running.report(0.3, step=1)
        storage.record_heartbeat(running._trial_id)
        study.set_user_attr(
            StudyAttr.TEST_RESULT, {"trial": 1, "metrics": {"map": 0.6}, "cmc": [0.6]}
        )
    finally:
        close_storage(storage)


def test_create_stores_the_spec_and_version(url: str) -> None:
    spec = tiny_spec()
    study = create_study(spec, url)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["reid_hpo_version"]
    assert json.loads(study.user_attrs["spec"]) == spec.model_dump(mode="json")
    assert spec_of(study) == spec


def test_duplicate_name_is_refused(url: str) -> None:
    create_study(tiny_spec(), url)
    with pytest.raises(StudyExistsError, match=r"already exists.*--resume"):
        create_study(tiny_spec(), url)


def test_resume_with_the_same_spec_returns_the_study(url: str) -> None:
    create_study(tiny_spec(), url)
    study = create_study(tiny_spec(), url, resume=True)
    assert study.study_name == "tiny"
    assert [info.name for info in list_studies(url)] == ["tiny"]


def test_resume_with_a_different_spec_is_refused(url: str) -> None:
    create_study(tiny_spec(), url)
    with pytest.raises(StudyExistsError, match=r"different spec \(first difference: budget"):
        create_study(tiny_spec(budget={"n_trials": 9}), url, resume=True)


def test_load_study_rebuilds_sampler_and_pruner(url: str) -> None:
    create_study(tiny_spec(sampler={"name": "random", "seed": 3}, pruner={"name": "none"}), url)
    study, spec = load_study("tiny", url)
    assert isinstance(study.sampler, optuna.samplers.RandomSampler)
    assert isinstance(study.pruner, optuna.pruners.NopPruner)
    assert spec.sampler.seed == 3


def test_missing_study_lists_the_available_names(url: str) -> None:
    create_study(tiny_spec(), url)
    create_study(tiny_spec(name="other"), url)
    with pytest.raises(StudyNotFoundError, match=r"no study 'nope' .*available: other, tiny"):
        load_study("nope", url)
    for call in (study_status, best_trial_of, delete_study):
        with pytest.raises(StudyNotFoundError):
            call("nope", url)


def test_study_without_spec_is_refused(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("hpo.study._lifecycle._SPEC_WAIT_S", 0.3)
    optuna.create_study(storage=url, study_name="foreign")
    with pytest.raises(SpecError, match="has no reid-hpo spec"):
        load_study("foreign", url)
    with pytest.raises(StudyExistsError, match="not created by reid-hpo"):
        create_study(tiny_spec(name="foreign"), url, resume=True)


def test_list_counts_trials_by_state(populated: str) -> None:
    (info,) = list_studies(populated)
    assert (info.name, info.metric, info.direction) == ("tiny", "map", "maximize")
    assert info.n_trials == 4
    assert (info.states["COMPLETE"], info.states["PRUNED"], info.states["RUNNING"]) == (2, 1, 1)
    assert (info.best_value, info.best_trial) == (0.7, 1)


def test_status_shows_running_trials_and_budget(populated: str) -> None:
    status = study_status("tiny", populated)
    assert status.n_finished == 3 and status.n_trials_budget == 4
    assert status.budget_used == pytest.approx(0.75)
    assert status.best is not None and (status.best.number, status.best.value) == (1, 0.7)
    (running,) = status.running
    assert (running.number, running.worker) == (3, "gpu-host:1234")
    assert (running.last_step, running.last_value) == (1, 0.3)
    assert running.heartbeat_age_s is not None and 0 <= running.heartbeat_age_s < 120


def test_best_trial_has_validation_and_separate_test_result(populated: str) -> None:
    best = best_trial_of("tiny", populated)
    assert (best.number, best.value, best.metric) == (1, 0.7, "map")
    assert best.val_metrics == {"map": 0.7, "rank1": pytest.approx(0.8)}
    assert best.cmc == [0.7, 0.9]
    assert best.checkpoint_dir == "runs/tiny/trial_1"
    assert best.test_result == {"trial": 1, "metrics": {"map": 0.6}, "cmc": [0.6]}
    assert set(best.params) == set(tiny_spec().search_space)


def test_best_trial_without_completed_trials(url: str) -> None:
    create_study(tiny_spec(), url)
    with pytest.raises(NoCompletedTrialError, match="no completed trial"):
        best_trial_of("tiny", url)


def test_export_csv_has_one_row_per_trial(populated: str, tmp_path: Path) -> None:
    out = tmp_path / "trials.csv"
    text = export_trials("tiny", populated, "csv", out)
    assert out.read_text() == text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["state"] for row in rows] == ["COMPLETE", "COMPLETE", "PRUNED", "RUNNING"]
    assert float(rows[1]["value"]) == 0.7
    assert float(rows[1]["user_attrs_val_metrics_map"]) == 0.7
    assert json.loads(rows[1]["user_attrs_cmc"]) == [0.7, 0.9]
    assert "params_sigma" in rows[0]


def test_export_json_has_spec_trials_and_test_result(populated: str) -> None:
    document = json.loads(export_trials("tiny", populated, "json"))
    assert document["spec"]["name"] == "tiny"
    assert document["test_result"]["trial"] == 1
    assert [t["number"] for t in document["trials"]] == [0, 1, 2, 3]
    # Keyed by the 1-based epoch (Optuna stored the value at step 0).
    assert document["trials"][1]["val_by_epoch"] == {"1": 0.35}


def test_delete_removes_the_study(url: str) -> None:
    create_study(tiny_spec(), url)
    _populate(url)
    assert delete_study("tiny", url).n_trials == 4
    assert list_studies(url) == []


def test_delete_removes_only_this_studys_artifacts_unless_kept(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the tiny spec's artifacts root is the relative "runs"
    spec = tiny_spec()
    first = create_study(spec, url).user_attrs["study_uuid"]
    other = tmp_path / "runs" / ("f" * 32) / "trial_0"  # another study's files, same root
    other.mkdir(parents=True)
    (tmp_path / "runs" / first / "trial_0" / "attempt_0").mkdir(parents=True)
    deleted = delete_study("tiny", url)
    assert (deleted.artifacts, deleted.artifacts_removed) == (Path("runs") / first, True)
    assert not (tmp_path / "runs" / first).exists() and other.is_dir()

    kept = create_study(spec, url).user_attrs["study_uuid"]
    assert kept != first
    assert (tmp_path / "runs" / kept / MARKER_NAME).is_file()  # `study create` made it
    deleted = delete_study("tiny", url, keep_artifacts=True)
    assert (deleted.artifacts_removed, (tmp_path / "runs" / kept).is_dir()) == (False, True)


def _create_in_child(url: str, start: multiprocessing.synchronize.Event) -> None:
    start.wait(scaled(30))
    create_study(tiny_spec(), url, resume=True)


@pytest.mark.postgres
def test_concurrent_creation_gives_one_study(postgres_url: str) -> None:
    # A fresh database: the processes also race to create the schema.
    ctx = multiprocessing.get_context("fork")
    start = ctx.Event()
    children = [ctx.Process(target=_create_in_child, args=(postgres_url, start)) for _ in range(3)]
    for child in children:
        child.start()
    start.set()
    for child in children:
        child.join(120)
    assert [child.exitcode for child in children] == [0, 0, 0]
    assert [info.name for info in list_studies(postgres_url)] == ["tiny"]
