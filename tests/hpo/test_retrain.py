"""``reid-hpo study retrain``: a finished synthetic study's best trial, retrained on every
training id, tested once, stored, shown; resumed after SIGKILL; refused a second time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hpo.cli import app
from hpo.spec import parse_spec
from hpo.storage import open_storage
from hpo.study import StudyAttr
from hpo.study import create_study
from hpo.study import load_study
from hpo.study._artifacts import resolve_stored
from hpo.study.records import format_pct
from hpo.worker import run_worker
from tests._helpers.waits import scaled
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict

runner = CliRunner()
TRAIN_IDS = 4  # make_dataset: 8 ids, half of them training ids
TRIAL_IDS = 2  # the spec carves half of them out for validation


def finished_study(tmp_path: Path, url: str, name: str = "retrain-me") -> Path:
    """A study whose one trial trained for real; returns the dataset root."""
    root = make_dataset(tmp_path / "mars")
    spec = parse_spec(
        spec_dict(name=name, data_root=root, artifacts=tmp_path / "artifacts", n_trials=1)
    )
    create_study(spec, open_storage(url))
    result = run_worker(name, url, device="cpu")
    assert result.complete == 1
    return root


def retrain(url: str, *extra: str, name: str = "retrain-me") -> object:
    return runner.invoke(app, ["study", "retrain", name, "--storage", url, *extra])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_retrain_trains_on_all_ids_stores_once_and_is_shown(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue(f"{backend}_url")
    finished_study(tmp_path, url)
    study, spec = load_study("retrain-me", url)
    best = study.best_trial
    assert best.user_attrs["val_metrics"]  # the trial was scored on its validation split

    first = retrain(url, "--epochs", "2", "--gpus", "none")
    assert first.exit_code == 0, first.output
    assert f"{TRAIN_IDS} training ids, 2 epochs" in first.output

    stored = load_study("retrain-me", url)[0].user_attrs[StudyAttr.RETRAIN_RESULT]
    assert stored["trial"] == best.number
    assert stored["params"] == best.params
    assert stored["train_ids"] == TRAIN_IDS > TRIAL_IDS
    assert (stored["epochs"], stored["epochs_run"]) == (2, 2)
    assert stored["split"] == "test"
    assert 0.0 <= stored["metrics"]["mAP"] <= 1.0
    assert 0.0 <= stored["metrics"]["rerank_mAP"] <= 1.0
    assert stored["config"]["data"]["validation"] is None
    assert stored["config"]["data"]["random_erasing"] == 0.5
    assert stored["config"]["loss"]["osm_sigma"] == best.params["sigma"]
    assert stored["code_version"]["reid_core"]
    summary = load_study("retrain-me", url)[0].user_attrs["retrain_result_pct"]
    assert summary.startswith(f"trial {best.number} retrained 2 epochs on all ids: mAP ")
    checkpoint = resolve_stored(spec.artifacts.root, stored["checkpoint"])
    assert checkpoint.is_file()
    folder = checkpoint.parent
    assert folder.parent.name == "retrain" and folder.name == f"trial_{best.number}"
    assert json.loads((folder / "test.json").read_text())["metrics"] == stored["metrics"]

    second = retrain(url, "--epochs", "2", "--gpus", "none")
    assert second.exit_code == 2
    assert second.output.startswith("Error: study 'retrain-me' already has a retrain result")
    again = load_study("retrain-me", url)[0].user_attrs[StudyAttr.RETRAIN_RESULT]
    assert again["evaluated_at"] == stored["evaluated_at"]

    best_json = runner.invoke(
        app, ["study", "best", "retrain-me", "--storage", url, "--format", "json"]
    )
    assert best_json.exit_code == 0, best_json.output
    assert json.loads(best_json.output)["retrain_result"]["metrics"] == stored["metrics"]
    table = runner.invoke(app, ["study", "best", "retrain-me", "--storage", url])
    assert f"retrained (trial {best.number}, {TRAIN_IDS} ids, 2 epochs)" in table.output
    exported = runner.invoke(
        app, ["study", "export", "retrain-me", "--storage", url, "--format", "json"]
    )
    assert json.loads(exported.output)["retrain_result"]["train_ids"] == TRAIN_IDS
    report = tmp_path / "report.html"
    made = runner.invoke(
        app, ["study", "report", "retrain-me", "--storage", url, "--out", str(report)]
    )
    assert made.exit_code == 0, made.output
    html = report.read_text()
    section = html[html.index("<section id='retrain'>") :]
    assert f"trial {best.number}, {TRAIN_IDS} training ids, 2 epochs" in section
    assert format_pct(stored["metrics"]["mAP"]) in section  # the one precision rule


def test_force_retrains_again_in_a_fresh_folder(sqlite_url: str, tmp_path: Path) -> None:
    finished_study(tmp_path, sqlite_url)
    assert retrain(sqlite_url, "--epochs", "2", "--device", "cpu").exit_code == 0
    first = load_study("retrain-me", sqlite_url)[0].user_attrs[StudyAttr.RETRAIN_RESULT]
    forced = retrain(sqlite_url, "--epochs", "1", "--device", "cpu", "--force", "--no-rerank")
    assert forced.exit_code == 0, forced.output
    stored = load_study("retrain-me", sqlite_url)[0].user_attrs[StudyAttr.RETRAIN_RESULT]
    assert stored["epochs"] == 1 and stored["evaluated_at"] >= first["evaluated_at"]
    assert "rerank_mAP" not in stored["metrics"]
    folder = resolve_stored(str(tmp_path / "artifacts"), stored["output_dir"])
    epochs = [
        json.loads(line)["epoch"] for line in (folder / "metrics.jsonl").read_text().splitlines()
    ]
    assert epochs == [1]  # the finished 2-epoch run was cleared, not mixed in


def test_a_killed_retrain_resumes_from_its_checkpoint(sqlite_url: str, tmp_path: Path) -> None:
    finished_study(tmp_path, sqlite_url)
    folder = tmp_path / "retrain-run"
    command = [sys.executable, "-m", "hpo.cli", "study", "retrain", "retrain-me"]
    command += ["--epochs", "12", "--device", "cpu", "--output", str(folder)]
    env = {**os.environ, "REID_HPO_STORAGE": sqlite_url}
    process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, start_new_session=True)
    deadline = time.monotonic() + scaled(240)
    while not (folder / "epoch_0003.pt.sha256").exists():
        assert process.poll() is None, "the retrain ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert StudyAttr.RETRAIN_RESULT not in load_study("retrain-me", sqlite_url)[0].user_attrs
    killed_after = max(int(p.name[6:10]) for p in folder.glob("epoch_*.pt.sha256"))
    assert killed_after < 12

    resumed = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from" in resumed.stderr
    resumed_lines = [line for line in resumed.stderr.splitlines() if "resum" in line]
    assert f"resumed from {folder}/epoch_{killed_after:04d}.pt" in resumed.stderr, resumed_lines
    stored = load_study("retrain-me", sqlite_url)[0].user_attrs[StudyAttr.RETRAIN_RESULT]
    assert (stored["epochs"], stored["epochs_run"], stored["train_ids"]) == (12, 12, TRAIN_IDS)
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    # Each epoch once, in order, through the last: the trainer logs an epoch before it writes
    # the epoch's checkpoint, so the one killed after its checkpoint is logged too.
    assert [json.loads(line)["epoch"] for line in lines] == list(range(1, 13))


def test_retrain_runs_the_worker_preflight(sqlite_url: str, tmp_path: Path) -> None:
    root = finished_study(tmp_path, sqlite_url)
    (root / "info" / "train_name.txt").unlink()
    result = retrain(sqlite_url, "--epochs", "1", "--device", "cpu")
    assert result.exit_code == 2
    assert result.output.startswith("Error: ") and "train_name.txt" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert StudyAttr.RETRAIN_RESULT not in load_study("retrain-me", sqlite_url)[0].user_attrs


def test_retrain_of_an_unknown_trial_is_one_line(sqlite_url: str, tmp_path: Path) -> None:
    finished_study(tmp_path, sqlite_url)
    result = retrain(sqlite_url, "--trial", "7", "--device", "cpu")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: study 'retrain-me' has no trial 7"
