"""README's "From a study to the reference's table" commands, run as written on synthetic data
with small-model options appended (the full-size ones need ImageNet weights and a GPU)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.spec import parse_spec
from hpo.storage import open_storage
from hpo.study import StudyAttr
from hpo.study import create_study
from hpo.study import load_study
from hpo.worker import run_worker
from reid_core.data import write_synthetic
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import spec_dict

SMALL = [
    "--backbone", "resnet10", "--attention", "pooled", "--no-pretrained",
    "--height", "32", "--width", "16", "--seq-len", "2", "--batch-size", "4",
    "--num-instances", "2", "--eval-every", "1", "--num-workers", "0", "--device", "cpu",
    "--warmup-epochs", "0", "--milestones", "100", "--lr", "1e-3", "--epochs", "2",
]  # fmt: skip


def readme_table_commands() -> list[list[str]]:
    """The ``reid-hpo`` lines of the README section, as argument lists."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## From a study to the reference's table", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.S)
    assert block is not None
    lines = [line for line in block.group(1).splitlines() if line.startswith("reid-hpo ")]
    return [shlex.split(line)[1:] for line in lines]


def test_the_readme_shows_the_three_commands() -> None:
    commands = readme_table_commands()
    assert [c[:2] for c in commands] == [
        ["study", "retrain"],
        ["train", "--preset"],
        ["train", "--preset"],
    ]
    assert "--init-from" in commands[2]


def test_the_readme_commands_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sqlite_url: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REID_HPO_STORAGE", sqlite_url)
    mars = write_synthetic(Path("data/mars"), "mars", ids=8, frames=6, height=32, width=16)
    write_synthetic(Path("data/prid"), "prid", ids=16, frames=6, height=32, width=16)
    retrain, preset_run, from_mars = readme_table_commands()
    raw = spec_dict(
        name=retrain[2], data_root=mars.resolve(), artifacts=tmp_path / "art", n_trials=1
    )
    create_study(parse_spec(raw), open_storage(sqlite_url))
    assert run_worker(retrain[2], sqlite_url, device="cpu").complete == 1

    runner = CliRunner()
    done = runner.invoke(app, [*retrain, "--epochs", "2", "--device", "cpu"])
    assert done.exit_code == 0, done.output
    stored = load_study(retrain[2], sqlite_url)[0].user_attrs[StudyAttr.RETRAIN_RESULT]
    assert stored["train_ids"] == 4

    done = runner.invoke(app, [*preset_run, *SMALL])
    assert done.exit_code == 0, done.output
    assert json.loads(Path("runs/bot_osm_cl/config.json").read_text())["data"]["validation"] is None

    done = runner.invoke(app, [*from_mars, *SMALL])
    assert done.exit_code == 0, done.output
    results = json.loads(Path("runs/prid_from_mars/results.json").read_text())
    assert results["init_from"]["dataset"] == "mars"
    assert results["config"]["loss"]["prototypes"] == "centers"
    assert results["config"]["loss"]["beta"] == 0.7103921571238655  # the PRID configuration
