"""Folders reid-hpo may delete are its own: ``study retrain --output DIR`` never replaces
another study's retrain (not even with ``--force``), names its owner when it refuses, refuses
a file, and holds a lock so that two retrains of one trial never share a folder.
"""

from __future__ import annotations

import fcntl
import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpo.cli import app
from tests.hpo._worker_support import told_study


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A study ``own`` with one COMPLETE trial (told, not trained) and a real dataset."""
    tmp = tmp_path_factory.mktemp("own")
    url = f"sqlite:///{tmp / 'study.db'}"
    told_study(url, "own", tmp)
    return url, tmp


def _retrain(url: str, *extra: str) -> tuple[int, str]:
    args = ["study", "retrain", "own", "--storage", url, "--epochs", "1", "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, *extra])
    return result.exit_code, result.output


def _one_line(code: int, output: str) -> str:
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def test_output_naming_a_file_is_one_line(finished: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = finished
    target = tmp_path / "a_file"
    target.write_text("mine")
    line = _one_line(*_retrain(url, "--output", str(target)))
    assert "is a file" in line
    assert target.read_text() == "mine"


@pytest.mark.parametrize("force", [False, True])
def test_another_studys_retrain_is_never_deleted(
    force: bool, finished: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = finished
    folder = tmp_path / "theirs"
    folder.mkdir()
    record = {"study": "theirs", "study_uuid": "0" * 32, "trial": 3, "config_hash": "x"}
    (folder / "retrain.json").write_text(json.dumps(record))
    (folder / "last.pt").write_text("their checkpoint")
    (folder / "test.json").write_text("{}")
    line = _one_line(*_retrain(url, "--output", str(folder), *(["--force"] if force else [])))
    assert "another study ('theirs', uuid " + "0" * 32 in line and "never replaced" in line
    assert (folder / "last.pt").read_text() == "their checkpoint"
    assert (folder / "test.json").is_file()


def test_a_second_retrain_of_the_same_folder_is_refused(
    finished: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = finished
    folder = tmp_path / "busy"
    folder.mkdir()
    with open(folder / ".retrain.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 1234 on elsewhere\n")
        held.flush()
        line = _one_line(*_retrain(url, "--output", str(folder)))
    assert "another retrain (pid 1234 on elsewhere) is running in" in line


def _trial_with_checkpoints(study: optuna.Study, folder: Path, value: float) -> None:
    import torch

    from reid_core.engine import CheckpointManager

    manager = CheckpointManager(folder)
    for epoch in range(1, 3):
        manager.save({"epoch": epoch, "model": {"w": torch.zeros(4)}}, epoch=epoch)
    trial = study.ask()
    trial.set_user_attr("checkpoint_dir", str(folder))
    trial.set_user_attr("checkpoint", str(folder / "epoch_0002.pt"))
    study.tell(trial, value)


def test_retention_never_touches_a_stored_folder_it_does_not_own(tmp_path: Path) -> None:
    from hpo.study import ArtifactMirror
    from hpo.study import apply_retention
    from hpo.study._artifacts import AttemptIdentity
    from hpo.study._artifacts import write_identity

    root, uuid = tmp_path / "root", "a" * 32
    study = optuna.create_study(direction="maximize")
    study.set_user_attr("study_uuid", uuid)
    own = root / uuid / "trial_0" / "run_0"
    write_identity(own, AttemptIdentity(uuid, 0, 0, "h"))
    outside = tmp_path / "elsewhere"  # a stored path pointing outside the artifacts root
    write_identity(outside, AttemptIdentity(uuid, 1, 1, "h"))
    foreign = root / uuid / "trial_2" / "run_2"  # under the root, owned by another study
    write_identity(foreign, AttemptIdentity("b" * 32, 2, 2, "h"))
    _trial_with_checkpoints(study, own, 0.1)
    _trial_with_checkpoints(study, outside, 0.2)
    _trial_with_checkpoints(study, foreign, 0.3)
    best = root / uuid / "trial_3" / "run_3"
    write_identity(best, AttemptIdentity(uuid, 3, 3, "h"))
    _trial_with_checkpoints(study, best, 0.9)

    assert apply_retention(study, ArtifactMirror(root)) > 0
    assert not list(own.glob("epoch_*.pt"))  # its own, not the best: dropped
    assert [p.name for p in best.glob("epoch_*.pt")] == ["epoch_0002.pt"]
    assert len(list(outside.glob("epoch_*.pt"))) == 2
    assert len(list(foreign.glob("epoch_*.pt"))) == 2
