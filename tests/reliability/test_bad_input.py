"""Bad input: one ``Error:`` line, exit code 2, no traceback, and no study left behind.

Each case runs the real CLI in-process (``CliRunner``) against a storage that the test then
inspects: a spec error must not even open (create) the storage; a storage error must leave
the database without a study. Three cases also run as a real ``reid-hpo`` process to check
the whole of stderr. The hypothesis property test of spec parsing is
``tests/hpo/test_spec.py::test_random_invalid_bounds_always_give_spec_error`` (and the
round-trip / integer-range properties beside it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from typer.testing import CliRunner
from typer.testing import Result

from hpo.cli import app
from hpo.study import list_studies
from tests._helpers.specs import tiny_spec_dict
from tests._helpers.specs import write_spec
from tests.reliability._private_pg import PrivatePostgres
from tests.reliability._procs import run_cli


def _invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


def _search(**entries: dict[str, Any]) -> dict[str, Any]:
    space = dict(tiny_spec_dict()["search_space"])
    space.update(entries)
    return {"search_space": space}


SPEC_CASES: dict[str, tuple[dict[str, Any] | str, str]] = {
    "malformed_yaml": ("name: tiny\n  dataset: [mars\n", "invalid YAML"),
    "unknown_key": ({"epochz": 3}, "epochz: unknown key"),
    "unknown_nested_key": ({"budget": {"n_trials": 4, "n_trails": 5}}, "budget.n_trails"),
    "wrong_type": ({"budget": {"n_trials": "many"}}, "budget.n_trials"),
    "low_above_high": (
        _search(sigma={"type": "float", "low": 2.0, "high": 1.0}),
        "low=2.0 must be <= high=1.0",
    ),
    "log_with_low_zero": (
        _search(margin={"type": "float", "low": 0.0, "high": 1.0, "log": True}),
        "log=true needs low > 0",
    ),
    "unknown_sampler": ({"sampler": {"name": "tpee"}}, "sampler.name"),
    "unknown_pruner": ({"pruner": {"name": "medain"}}, "pruner.name"),
    "unknown_objective": ({"objective": {"metric": "map5"}}, "objective.metric"),
    "unknown_dataset": ({"dataset": {"name": "marss", "root": "d"}}, "unknown dataset 'marss'"),
    "unknown_search_parameter": (
        _search(sigmaa={"type": "float", "low": 0.1, "high": 1.0}),
        "search_space.sigmaa",
    ),
    "sampler_seed_too_large": ({"sampler": {"name": "tpe", "seed": 2**32}}, "sampler.seed"),
    "negative_seed": ({"seed": -1}, "seed: Input should be greater than or equal to 0"),
    "validation_seed_too_large": ({"validation": {"seed": 2**40}}, "validation.seed"),
    "heartbeat_interval_too_long": ({"heartbeat": {"interval": 10**12}}, "heartbeat.interval"),
    "heartbeat_grace_too_long": (
        {"heartbeat": {"interval": 30, "grace": 10**12}},
        "heartbeat.grace",
    ),
    # gamma searched (the tiny space does) where the learning rate never decays
    "gamma_searched_with_milestones_past_the_epochs": (
        {"training": {**tiny_spec_dict()["training"], "milestones": [3, 10]}},
        "search_space.gamma: gamma scales the learning rate at the milestones, but none of "
        "training.milestones [3, 10] falls inside the 3 epochs",
    ),
    "gamma_searched_without_milestones": (
        {"training": {**tiny_spec_dict()["training"], "milestones": []}},
        "none of training.milestones [] falls inside the 3 epochs",
    ),
}


@pytest.mark.parametrize("case", sorted(SPEC_CASES))
def test_bad_spec_is_one_line_exit_2_and_never_touches_the_storage(
    case: str, tmp_path: Path
) -> None:
    content, expected = SPEC_CASES[case]
    spec_file = tmp_path / "spec.yaml"
    if isinstance(content, str):
        spec_file.write_text(content)
    else:
        write_spec(spec_file, **content)
    database = tmp_path / "study.db"
    for command in ("create", "run"):
        line = _one_error_line(
            _invoke("study", command, str(spec_file), "--storage", f"sqlite:///{database}")
        )
        assert expected in line
        assert str(spec_file) in line
    assert not database.exists()  # no storage opened, so certainly no partial study


def test_missing_spec_file_is_one_line(tmp_path: Path) -> None:
    line = _one_error_line(
        _invoke("study", "create", str(tmp_path / "nope.yaml"), "--storage", "sqlite://")
    )
    assert "no such spec file" in line


def test_missing_dataset_root_is_refused_before_a_study_exists(tmp_path: Path) -> None:
    spec_file = write_spec(
        tmp_path / "spec.yaml", dataset={"name": "mars", "root": str(tmp_path / "no_data")}
    )
    url = f"sqlite:///{tmp_path / 'study.db'}"
    line = _one_error_line(
        _invoke("study", "run", str(spec_file), "--storage", url, "--gpus", "none")
    )
    assert str(tmp_path / "no_data") in line
    assert not (tmp_path / "study.db").exists() or list_studies(url) == []


def test_existing_study_name_without_resume(tmp_path: Path, postgres_url: str) -> None:
    spec_file = write_spec(tmp_path / "spec.yaml")
    assert _invoke("study", "create", str(spec_file), "--storage", postgres_url).exit_code == 0
    line = _one_error_line(_invoke("study", "create", str(spec_file), "--storage", postgres_url))
    assert "already exists" in line and "--resume" in line
    assert [info.name for info in list_studies(postgres_url)] == ["tiny"]


def test_existing_name_with_another_spec_is_refused_even_with_resume(
    tmp_path: Path, postgres_url: str
) -> None:
    spec_file = write_spec(tmp_path / "spec.yaml")
    assert _invoke("study", "create", str(spec_file), "--storage", postgres_url).exit_code == 0
    other = write_spec(tmp_path / "other.yaml", budget={"n_trials": 9})
    line = _one_error_line(
        _invoke("study", "create", str(other), "--storage", postgres_url, "--resume")
    )
    assert "different spec" in line and "budget.n_trials" in line
    study = optuna.load_study(study_name="tiny", storage=postgres_url)
    assert '"n_trials":4' in study.user_attrs["spec"]  # the stored spec is untouched


@pytest.mark.parametrize(
    "command",
    [
        ("study", "status", "nope"),
        ("study", "best", "nope"),
        ("study", "export", "nope", "--format", "csv"),
        ("study", "delete", "nope", "--yes"),
        ("study", "report", "nope", "--out", "r.html"),
        ("study", "run", "nope", "--gpus", "none"),
    ],
    ids=lambda c: c[1],
)
def test_study_that_does_not_exist(command: tuple[str, ...], postgres_url: str) -> None:
    line = _one_error_line(_invoke(*command, "--storage", postgres_url))
    assert "no study 'nope'" in line
    assert list_studies(postgres_url) == []


STORAGE_CASES: dict[str, tuple[str, str]] = {
    "unreachable": ("postgresql://alice:s3cret-pw@127.0.0.1:1/reid", "Connection refused"),
    "unsupported_scheme": ("mongodb://alice:s3cret-pw@127.0.0.1/reid", "no database driver"),
    "not_a_url": ("alice:s3cret-pw@nowhere", "not a valid SQLAlchemy URL"),
}


@pytest.mark.parametrize("case", sorted(STORAGE_CASES))
def test_bad_storage_url(case: str, tmp_path: Path) -> None:
    url, expected = STORAGE_CASES[case]
    spec_file = write_spec(tmp_path / "spec.yaml")
    for args in (("study", "create", str(spec_file)), ("study", "list"), ("worker", "tiny")):
        line = _one_error_line(
            _invoke(*args, "--storage", url, *(("--gpus", "none") if args[0] == "worker" else ()))
        )
        assert expected in line
        assert "s3cret-pw" not in line


def test_wrong_password_is_refused_with_a_masked_url(
    tmp_path: Path, private_pg: PrivatePostgres
) -> None:
    good = private_pg.database()
    bad = good.replace(private_pg.password, "not-the-password")
    spec_file = write_spec(tmp_path / "spec.yaml")
    line = _one_error_line(_invoke("study", "create", str(spec_file), "--storage", bad))
    assert "password authentication failed" in line
    assert "postgres:***@127.0.0.1" in line
    assert "not-the-password" not in line and private_pg.password not in line
    assert list_studies(good) == []


@pytest.mark.parametrize(
    "args",
    [
        ("study", "create", "{spec}", "--storage", "sqlite:///{tmp}/s.db"),
        ("study", "status", "nope", "--storage", "sqlite:///{tmp}/s.db"),
        ("study", "list", "--storage", "postgresql://u:s3cret-pw@127.0.0.1:1/db"),
    ],
    ids=["malformed_yaml", "missing_study", "unreachable_db"],
)
def test_the_installed_command_prints_exactly_one_line(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("name: [unclosed\n")
    argv = [a.format(spec=spec, tmp=tmp_path) for a in args]
    done = run_cli(*argv)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("Error: "), done.stderr
    assert "s3cret-pw" not in done.stderr


LONG = "x" * 300


@pytest.mark.parametrize(
    "args",
    [
        ("data", "synth", f"{LONG}/data", "--layout", "mars"),
        ("data", "check", LONG, "--dataset", "mars"),
        ("study", "plan", f"{LONG}.yaml"),
        ("study", "create", f"{LONG}.yaml", "--storage", "sqlite://"),
        ("evaluate", f"{LONG}.pt"),
    ],
    ids=["synth", "check", "plan", "create", "evaluate"],
)
def test_a_path_longer_than_the_file_system_allows_is_one_line(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    line = _one_error_line(_invoke(*args))
    assert LONG[:50] in line  # (study report --out: tests/reliability/test_output_files.py)


def test_a_checkpoint_with_a_binary_checksum_file_is_one_line(tmp_path: Path) -> None:
    import torch

    from reid_core.engine import save_checkpoint

    path = save_checkpoint(tmp_path / "epoch_0000.pt", {"model": {"w": torch.zeros(2)}})
    (tmp_path / "epoch_0000.pt.sha256").write_bytes(b"\xff\xfe\x00\x81")
    line = _one_error_line(_invoke("evaluate", str(path), "--device", "cpu"))
    assert "unreadable checksum file" in line
