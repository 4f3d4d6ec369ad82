"""Input that used to be accepted (then failed every trial) or ended in a traceback: one
``Error:`` line and exit 2, before any trial, and nothing written on a failed lookup."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.cli import app
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import trials_of
from tests.hpo._worker_support import write_spec


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


def _one_error_line(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


@pytest.mark.parametrize(
    ("validation", "expected"),
    [
        (
            {"sampling": "guided", "guided_ids": [9999]},
            "9999",
        ),
        (
            {"sampling": "random", "fraction": 0.99, "distractor_fraction": 0.25},
            "leave no training id",
        ),
        (
            {"sampling": "random", "fraction": 0.7, "distractor_fraction": 0.25},
            "the carve-out leaves 1 training ids, fewer than the 2 ids of one batch",
        ),
    ],
    ids=["guided-id-not-in-the-dataset", "fraction-leaves-no-id", "fraction-leaves-too-few"],
)
def test_validation_that_does_not_fit_the_dataset_is_refused_before_any_trial(
    validation: dict[str, object], expected: str, tmp_path: Path, data_root: Path
) -> None:
    raw = spec_dict(name="fit", data_root=data_root, artifacts=tmp_path / "runs")
    raw["validation"] = validation
    spec_file = write_spec(tmp_path / "fit.yaml", raw)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    line = _one_error_line(["study", "run", str(spec_file), "--storage", url, "--gpus", "none"])
    assert expected in line
    assert not (tmp_path / "study.db").exists() or trials_of("fit", url) == []


def test_study_create_checks_guided_ids_against_a_readable_dataset(
    tmp_path: Path, data_root: Path
) -> None:
    raw = spec_dict(name="ids", data_root=data_root, artifacts=tmp_path / "runs")
    raw["validation"] = {"sampling": "guided", "guided_ids": [9999]}
    spec_file = write_spec(tmp_path / "ids.yaml", raw)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert "9999" in _one_error_line(["study", "create", str(spec_file), "--storage", url])
    assert not (tmp_path / "study.db").exists()
    # A dataset this machine does not see is checked by the workers' preflight instead.
    raw["dataset"]["root"] = str(tmp_path / "elsewhere")
    write_spec(spec_file, raw)
    result = CliRunner().invoke(app, ["study", "create", str(spec_file), "--storage", url])
    assert result.exit_code == 0, result.output


def test_a_searched_categorical_of_the_wrong_type_is_refused_at_create(
    tmp_path: Path, data_root: Path
) -> None:
    raw = spec_dict(name="typed", data_root=data_root, artifacts=tmp_path / "runs")
    raw["search_space"]["batch_size"] = {"type": "categorical", "choices": ["16"]}
    spec_file = write_spec(tmp_path / "typed.yaml", raw)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    line = _one_error_line(["study", "create", str(spec_file), "--storage", url])
    assert "search_space.batch_size.choices.0" in line


def test_study_run_with_a_name_too_long_for_a_file_is_a_lookup(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    (tmp_path / "study.db").touch()
    line = _one_error_line(["study", "run", "x" * 300, "--storage", url, "--gpus", "none"])
    assert "no study" in line


def test_a_failed_lookup_creates_no_database(tmp_path: Path) -> None:
    database = tmp_path / "new.db"
    url = f"sqlite:///{database}"
    for args in (
        ["study", "run", "missing", "--storage", url, "--gpus", "none"],
        ["study", "status", "missing", "--storage", url],
        ["worker", "missing", "--storage", url, "--gpus", "none"],
    ):
        assert "no study database at" in _one_error_line(args)
    assert not database.exists()


@pytest.mark.parametrize("where", ["a directory", "under a file", "empty"])
def test_report_to_a_path_that_cannot_hold_a_file_is_one_line(
    where: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests._helpers.fake_study import make_study

    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_study(url, name="r")
    (tmp_path / "a_file").write_text("x")
    monkeypatch.chdir(tmp_path)
    out = {"a directory": str(tmp_path), "under a file": "a_file/report.html", "empty": ""}[where]
    line = _one_error_line(["study", "report", "r", "--out", out, "--storage", url])
    assert "cannot write the report to" in line


def test_study_run_prefers_an_existing_study_over_a_file_of_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests._helpers.fake_study import make_study

    url = f"sqlite:///{tmp_path / 'study.db'}"
    make_study(url, name="mystudy")  # its spec's dataset root (data/mars) is not here
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mystudy").write_text("not: [a spec\n")
    (tmp_path / "other").write_text("not: [a spec\n")
    by_name = _one_error_line(["study", "run", "mystudy", "--storage", url, "--gpus", "none"])
    assert "data/mars" in by_name and "YAML" not in by_name  # the study, not the file
    by_file = _one_error_line(["study", "run", "other", "--storage", url, "--gpus", "none"])
    assert "invalid YAML" in by_file  # no study 'other': the file is the spec
