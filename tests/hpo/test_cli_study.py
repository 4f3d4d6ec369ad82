"""`reid-hpo study ...` in-process: exit codes, one-line errors, masked storage URLs."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner
from typer.testing import Result

from hpo.cli import app
from hpo.study import list_studies
from tests._helpers.specs import write_spec

SECRET = "hunter2-secret"


def _run(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(app, ["study", *args], input=input)


def _user_error(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture()
def spec_file(tmp_path: Path) -> Path:
    return write_spec(tmp_path / "tiny.yaml")


@pytest.fixture()
def created(spec_file: Path, sqlite_url: str) -> str:
    result = _run("create", str(spec_file), "--storage", sqlite_url)
    assert result.exit_code == 0, result.output
    return sqlite_url


def test_help_lists_the_commands_with_examples() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for command in ("create", "list", "status", "best", "export", "delete"):
        assert command in result.output
    assert "Examples" in result.output


def test_create_prints_the_study_and_next_step(spec_file: Path, sqlite_url: str) -> None:
    result = _run("create", str(spec_file), "--storage", sqlite_url)
    assert result.exit_code == 0, result.output
    assert "Created study 'tiny'" in result.output
    assert "reid-hpo worker tiny" in result.output


def test_create_twice_is_a_one_line_error(spec_file: Path, created: str) -> None:
    line = _user_error(_run("create", str(spec_file), "--storage", created))
    assert "already exists" in line and "--resume" in line


def test_create_resume_accepts_the_same_spec(spec_file: Path, created: str) -> None:
    result = _run("create", str(spec_file), "--storage", created, "--resume")
    assert result.exit_code == 0, result.output
    assert "Resumed study 'tiny'" in result.output


def test_invalid_spec_is_a_one_line_error(tmp_path: Path, sqlite_url: str) -> None:
    bad = write_spec(tmp_path / "bad.yaml", sampler={"name": "tpee"})
    line = _user_error(_run("create", str(bad), "--storage", sqlite_url))
    assert f"{bad}: sampler.name:" in line
    assert not Path(sqlite_url.removeprefix("sqlite:///")).exists()


def test_storage_from_the_environment(
    spec_file: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REID_HPO_STORAGE", sqlite_url)
    assert _run("create", str(spec_file)).exit_code == 0
    assert [info.name for info in list_studies(sqlite_url)] == ["tiny"]


def test_list_shows_the_study(created: str) -> None:
    result = _run("list", "--storage", created)
    assert result.exit_code == 0, result.output
    assert "tiny" in result.output and "map (max)" in result.output


def test_list_of_an_empty_storage(sqlite_url: str) -> None:
    result = _run("list", "--storage", sqlite_url)
    assert result.exit_code == 0 and "No studies" in result.output


def _add_completed_trial(url: str) -> None:
    study = optuna.load_study(study_name="tiny", storage=url)
    trial = study.ask({"sigma": optuna.distributions.FloatDistribution(0.1, 1.0)})
    trial.set_user_attr("val_metrics", {"map": 0.5})
    trial.set_user_attr("checkpoint_dir", "uuid/trial_0/run_0")
    trial.set_user_attr("epochs_trained", 2)
    trial.set_user_attr("device_seconds", 12.0)
    trial.set_user_attr("device", "cpu")
    study.tell(trial, 0.5)


def test_status_table_and_json(created: str) -> None:
    _add_completed_trial(created)
    table = _run("status", "tiny", "--storage", created)
    assert table.exit_code == 0, table.output
    assert "complete 1" in table.output and "best: trial 0" in table.output
    assert "compute: 2 epochs, 12 device-seconds on cpu" in table.output
    as_json = json.loads(_run("status", "tiny", "--storage", created, "--format", "json").output)
    assert as_json["states"]["COMPLETE"] == 1 and as_json["n_trials_budget"] == 4


def test_status_of_a_missing_study_lists_names(created: str) -> None:
    line = _user_error(_run("status", "nope", "--storage", created))
    assert "no study 'nope'" in line and "available: tiny" in line


def test_best_json(created: str) -> None:
    _add_completed_trial(created)
    result = _run("best", "tiny", "--storage", created, "--format", "json")
    assert result.exit_code == 0, result.output
    best = json.loads(result.output)
    assert (best["number"], best["value"], best["test_result"]) == (0, 0.5, None)


def test_best_table(created: str) -> None:
    _add_completed_trial(created)
    result = _run("best", "tiny", "--storage", created)
    assert result.exit_code == 0, result.output
    assert "Best trial of 'tiny': #0" in result.output
    assert "test set: not evaluated yet" in result.output
    # The folder is absolute (the stored one is relative to the spec's artifacts root) and
    # its config.json is what `train --config` reruns.
    folder = next(ln for ln in result.output.splitlines() if ln.startswith("trial folder: "))
    path = Path(folder.removeprefix("trial folder: "))
    assert path.is_absolute() and path.parts[-3:] == ("uuid", "trial_0", "run_0")
    assert f"reid-hpo train --config {path / 'config.json'}" in result.output
    assert "trial 0 spent 2 epochs, 12 device-seconds on cpu" in result.output
    assert "study compute: 2 epochs, 12 device-seconds on cpu" in result.output


def test_best_without_trials_is_a_user_error(created: str) -> None:
    assert "no completed trial" in _user_error(_run("best", "tiny", "--storage", created))


def test_export_csv_to_stdout_and_json_to_file(created: str, tmp_path: Path) -> None:
    _add_completed_trial(created)
    study = optuna.load_study(study_name="tiny", storage=created)
    study.set_user_attr("test_result", {"trial": 0, "metrics": {"mAP": 0.25}})
    result = _run("export", "tiny", "--format", "csv", "--storage", created)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("number,state,value")
    (row,) = csv.DictReader(io.StringIO(result.output))
    assert row["test_mAP"] == "0.25" and row["user_attrs_epochs_trained"] == "2"
    out = tmp_path / "t.json"
    result = _run("export", "tiny", "--format", "json", "--out", str(out), "--storage", created)
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert document["trials"][0]["value"] == 0.5
    assert document["compute"]["epochs_trained"] == 2


def test_export_needs_a_known_format(created: str) -> None:
    result = _run("export", "tiny", "--format", "xml", "--storage", created)
    assert result.exit_code == 2


def test_delete_asks_first(created: str) -> None:
    result = _run("delete", "tiny", "--storage", created, input="n\n")
    assert result.exit_code == 1
    assert [info.name for info in list_studies(created)] == ["tiny"]
    result = _run("delete", "tiny", "--storage", created, input="y\n")
    assert result.exit_code == 0 and "Deleted study 'tiny'" in result.output
    assert list_studies(created) == []


def test_delete_with_yes(created: str) -> None:
    result = _run("delete", "tiny", "--storage", created, "--yes")
    assert result.exit_code == 0
    assert list_studies(created) == []


def test_unreachable_storage_is_masked() -> None:
    url = f"postgresql://alice:{SECRET}@127.0.0.1:1/reid"
    line = _user_error(_run("list", "--storage", url))
    assert "alice:***@127.0.0.1:1" in line
    assert SECRET not in line


@pytest.mark.postgres
def test_postgres_password_never_printed(spec_file: Path, postgres_url: str) -> None:
    url = postgres_url.replace(
        "postgresql+psycopg2://postgres@", f"postgresql://postgres:{SECRET}@"
    )
    outputs = [
        _run("create", str(spec_file), "--storage", url),
        _run("create", str(spec_file), "--storage", url),
        _run("list", "--storage", url),
        _run("status", "tiny", "--storage", url),
        _run("delete", "tiny", "--storage", url, input="n\n"),
        _run("delete", "tiny", "--storage", url, "--yes"),
    ]
    assert [r.exit_code for r in outputs] == [0, 2, 0, 0, 1, 0]
    assert "postgres:***@" in outputs[0].output
    for result in outputs:
        assert SECRET not in result.output


def test_tensorboard_names_runs_by_study_and_trial(
    created: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the spec's artifacts root is the relative "runs"
    _add_completed_trial(created)  # its folder: runs/uuid/trial_0/run_0
    assert (
        "no TensorBoard event files yet" in _run("tensorboard", "tiny", "--storage", created).output
    )
    events = tmp_path / "runs" / "uuid" / "trial_0" / "run_0" / "tensorboard"
    (events / "trial_0").mkdir(parents=True)
    result = _run("tensorboard", "tiny", "--storage", created)
    assert result.exit_code == 0, result.output
    # TensorBoard names the run in trial_0/ under the entry "tiny": tiny/trial_0.
    assert result.output.strip() == f"tensorboard --logdir_spec 'tiny:{events}'"
    # A pruned and a failed trial are marked in their run's name.
    study = optuna.load_study(study_name="tiny", storage=created)
    for number, state in ((1, TrialState.PRUNED), (2, TrialState.FAIL)):
        trial = study.ask({"sigma": optuna.distributions.FloatDistribution(0.1, 1.0)})
        trial.set_user_attr("checkpoint_dir", f"uuid/trial_{number}/run_{number}")
        if state is TrialState.FAIL:
            trial.set_user_attr("fail_reason", "exception:RuntimeError")
        study.tell(trial, state=state)
        attempt = tmp_path / "runs" / "uuid" / f"trial_{number}" / f"run_{number}"
        (attempt / "tensorboard" / f"trial_{number}").mkdir(parents=True)
    spec = _run("tensorboard", "tiny", "--storage", created).output.strip()
    groups = [entry.split(":")[0] for entry in spec.split("'")[1].split(",")]
    assert groups == ["tiny", "tiny/pruned", "tiny/failed"]  # runs tiny/pruned/trial_1, ...
