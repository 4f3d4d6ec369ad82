"""Broken data: ``data check`` names the file; training fails the trial instead of hanging.

Faults: a truncated JPEG, a missing frame, an empty tracklet (an empty iLIDS-VID sequence
folder; a MARS tracklet row whose frame range is empty). Training on a corrupt identity, with
the data loader in-process and with 2 loader worker processes, must FAIL the trial with
``fail_reason="data_error"`` within seconds and leave the worker able to go on.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import scipy.io
from optuna.trial import TrialState
from typer.testing import CliRunner
from typer.testing import Result

from hpo.cli import app
from hpo.spec import StudySpec
from hpo.study import create_study
from hpo.worker import run_worker
from reid_core.data import write_synthetic
from tests.hpo._worker_support import spec_dict


def _check(root: Path, dataset: str = "mars") -> Result:
    return CliRunner().invoke(app, ["data", "check", str(root), "--dataset", dataset])


def _error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.fixture()
def mars_copy(mars_root: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(mars_root, tmp_path / "mars"))


def _first_train_frames(root: Path) -> list[Path]:
    folder = sorted((root / "bbox_train").iterdir())[0]
    return sorted(folder.glob("*.jpg"))


def test_data_check_passes_on_the_intact_dataset(mars_copy: Path) -> None:
    result = _check(mars_copy)
    assert result.exit_code == 0, result.output
    assert "OK" in result.output


def test_data_check_names_a_truncated_frame(mars_copy: Path) -> None:
    frame = _first_train_frames(mars_copy)[3]
    frame.write_bytes(frame.read_bytes()[:200])
    line = _error_line(_check(mars_copy))
    assert "corrupt frame" in line and str(frame) in line


def test_data_check_names_a_frame_that_is_not_an_image(mars_copy: Path) -> None:
    frame = _first_train_frames(mars_copy)[0]
    frame.write_bytes(b"not a jpeg at all")
    assert str(frame) in _error_line(_check(mars_copy))


def test_data_check_names_a_missing_frame(mars_copy: Path) -> None:
    frame = _first_train_frames(mars_copy)[1]
    frame.unlink()
    line = _error_line(_check(mars_copy))
    assert "missing frame" in line and str(frame) in line


def test_data_check_names_an_empty_ilidsvid_sequence(tmp_path: Path) -> None:
    root = write_synthetic(tmp_path / "ilids", "ilidsvid", ids=6, frames=6, height=32, width=16)
    sequence = sorted(p for p in root.rglob("*") if p.is_dir() and any(p.glob("*.png")))[0]
    for frame in sequence.glob("*.png"):
        frame.unlink()
    line = _error_line(_check(root, "ilidsvid"))
    assert "empty tracklet" in line and str(sequence) in line


def test_data_check_names_an_empty_mars_tracklet_row(mars_copy: Path) -> None:
    table = mars_copy / "info" / "tracks_train_info.mat"
    rows = np.asarray(scipy.io.loadmat(str(table))["track_train_info"])
    rows[2, 1] = rows[2, 0] - 1  # end before start: a tracklet without frames
    scipy.io.savemat(str(table), {"track_train_info": rows})
    line = _error_line(_check(mars_copy))
    assert str(table) in line and "row 3" in line


@pytest.mark.parametrize("loader_workers", [0, 2])
@pytest.mark.timeout(180)
def test_training_on_a_corrupt_identity_fails_the_trial_with_data_error(
    loader_workers: int, mars_copy: Path, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    for frame in _first_train_frames(mars_copy):
        frame.write_bytes(frame.read_bytes()[:120])
    raw = spec_dict(name="corrupt", data_root=mars_copy, artifacts=tmp_path / "runs", n_trials=2)
    raw["training"]["num_workers"] = loader_workers
    url = f"sqlite:///{tmp_path / 'study.db'}"
    create_study(StudySpec.model_validate(raw), url)

    started = time.monotonic()
    result = run_worker("corrupt", url, max_trials=1, poll_interval_s=0.2)
    seconds = time.monotonic() - started

    assert result.failed == 1 and result.stop_reason == "max_trials"
    (trial,) = optuna.load_study(study_name="corrupt", storage=url).trials
    assert trial.state is TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "data_error"
    record_property("seconds_to_fail", round(seconds, 1))
    assert seconds < 120  # the loader did not hang
