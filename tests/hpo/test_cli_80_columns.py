"""At 80 columns (COLUMNS=80): `study list` and `study status` never split a study name, and
`train --help` neither cuts a default nor shows a flag as `<bool>`."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
from typer.testing import CliRunner

from hpo.cli import app
from tests._helpers.doc_examples import help_examples
from tests._helpers.specs import write_spec

NAME = "demo-20261206-200744-mars-map"
"""As long as the demo's generated names and longer."""


def _run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "80"}, terminal_width=80)
    assert result.exit_code == 0, result.output
    assert "…" not in result.output, result.output  # nothing cut
    return result.output


def test_study_list_and_status_keep_the_name_whole(tmp_path: Path, sqlite_url: str) -> None:
    spec = write_spec(tmp_path / "s.yaml", name=NAME)
    _run("study", "create", str(spec), "--storage", sqlite_url)
    study = optuna.load_study(study_name=NAME, storage=sqlite_url)
    trial = study.ask({"sigma": optuna.distributions.FloatDistribution(0.1, 1.0)})
    for key, value in {"epochs_trained": 2, "device_seconds": 12.0, "device": "cpu"}.items():
        trial.set_user_attr(key, value)
    study.tell(trial, 0.8872549019607843)

    listing = _run("study", "list", "--storage", sqlite_url).splitlines()
    row = next(line for line in listing if NAME in line)
    assert "88.7%" in row
    table = [line for line in listing if not line.startswith("Studies in ")]  # + a long path
    assert all(len(line) <= 80 for line in table), table

    status = _run("study", "status", NAME, "--storage", sqlite_url)
    assert f"Study {NAME!r}" in status
    assert "best: trial 0 map 88.7%" in status
    assert "compute: 2 epochs, 12 device-seconds on cpu" in status


def test_train_help_fits_80_columns_with_whole_defaults_and_flags() -> None:
    text = _run("train", "--help")
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), [ln for ln in lines if len(ln) > 80]
    assert "<bool>" not in text
    assert "--pretrained / --no-pretrained" in text
    # Every default is shown whole: its bracket closes (a default may wrap, never be cut).
    flat = " ".join(line.strip() for line in lines)
    assert flat.count("[default:") == len(re.findall(r"\[default: [^\]]+\]", flat)) > 10
    # One example per line, a long one continued with a backslash.
    assert any(line.strip().startswith("reid-hpo data synth") for line in lines)
    assert any(line.rstrip().endswith("\\") for line in lines)


def test_every_commands_help_shows_its_examples_one_per_line() -> None:
    # The raw help text holds the examples; the rendered --help must keep them on lines of
    # their own (a click "\b" block), never joined by the paragraph rewrapping.
    for path, example in help_examples():
        words = path.split()[1:]
        text = _run(*words, "--help")
        first = example.split(" \\")[0][:60]
        rendered = [line.strip() for line in text.splitlines()]
        assert any(first in line for line in rendered), (path, example, text)
        assert all(line.count("reid-hpo ") <= 1 for line in rendered), (path, text)
