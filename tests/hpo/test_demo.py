"""`reid-hpo demo` end to end: data, study with pruning, test evaluation, report."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from hpo import demo
from hpo.cli import app
from hpo.demo import free_study_name
from hpo.study import export_trials
from hpo.study import list_studies
from hpo.study import spec_of
from hpo.study import study_status
from hpo.study import tensorboard_runs


def test_demo_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The shipped spec (6 epochs, validation after each) on half the demo's identities and
    # 8-frame tracklets: half the steps per epoch, a third of the clips evaluated. The demo's
    # own dataset is what test_demo_examples (tests/test_documented_examples.py) runs on.
    monkeypatch.setattr(demo, "DEMO_DATA", {**demo.DEMO_DATA, "ids": 32, "frames": 8})
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--trials", "2"])
    assert result.exit_code == 0, result.output

    url = f"sqlite:///{(out / 'reid_hpo.db').resolve()}"
    (info,) = list_studies(url)
    assert info.name.startswith("demo-")
    study = optuna.load_study(study_name=info.name, storage=url)
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) == 2
    # Trials are selected on validation; the best one is then evaluated once on the test split.
    test_result = study.user_attrs["test_result"]
    assert test_result["trial"] == study.best_trial.number
    assert 0.0 < test_result["metrics"]["mAP"] <= 1.0
    assert 0.0 < study.best_value <= 1.0
    assert (out / "data" / "mars" / "info" / "tracks_train_info.mat").is_file()
    report = (out / "report.html").read_text()
    assert info.name in report
    assert "reid-hpo dashboard" in result.output
    assert str(out / "report.html") in result.output.replace("\n", "")
    # Training curves: the command that names TensorBoard's runs <study>/trial_<n>.
    assert f"reid-hpo study tensorboard {info.name} --storage " in result.output
    runs = tensorboard_runs(info.name, url)
    assert set(runs) == {f"{info.name}/trial_{t.number}" for t in finished}
    json.dumps(test_result)  # what the report and `study best` read is plain JSON
    # Retention: only the best complete trial keeps a checkpoint (the one `study test` used).
    checkpoints = sorted(p.name for p in (out / "runs").rglob("epoch_*.pt"))
    assert len(checkpoints) == 1, checkpoints
    used = sum(p.stat().st_size for p in out.rglob("*") if p.is_file() and not p.is_symlink())
    assert used < 100 * 2**20, f"the demo leaves {used / 2**20:.0f} MiB"
    # Paths are stored relative to the (absolute) artifacts root: testing again works from
    # any working directory.
    assert not Path(study.best_trial.user_attrs["checkpoint"]).is_absolute()
    _check_the_compute_account(study, out / "runs", result.output)


def _check_the_compute_account(study: optuna.Study, runs: Path, output: str) -> None:
    """The account `study status`, `study best`, the export and the demo show, read back against
    each trial's own metrics.jsonl (one line per trained epoch) and timestamps."""
    epochs_per_trial = spec_of(study).training.epochs
    epochs = seconds = saved = 0.0
    for trial in study.trials:
        attrs = trial.user_attrs
        logged = (runs / attrs["checkpoint_dir"] / "metrics.jsonl").read_text().splitlines()
        assert attrs["epochs_trained"] == len(logged) == attrs["epochs_done"]
        assert 0 < attrs["device_seconds"] <= trial.duration.total_seconds() + 0.1
        assert attrs["device"] == "cpu" and attrs["device_count"] == 1
        epochs += len(logged)
        seconds += attrs["device_seconds"]
        if trial.state == optuna.trial.TrialState.PRUNED:
            saved += epochs_per_trial - len(logged)
    document = json.loads(export_trials(study.study_name, _url_of(runs), "json"))
    account = document["compute"]
    assert account["epochs_trained"] == epochs
    assert account["device_seconds"] == round(seconds, 1)
    assert account["epochs_saved"] == saved
    assert account["unpruned_epochs"] == len(study.trials) * epochs_per_trial
    assert account["unit"] == "device" and account["devices"] == ["cpu"]
    assert f"compute: {int(epochs)} epochs" in output
    status = study_status(study.study_name, _url_of(runs))
    assert status.compute is not None and status.compute.epochs_trained == epochs
    # A finished study's clock stops at its last trial.
    last = max(t.datetime_complete for t in study.trials)
    first = min(t.datetime_start for t in study.trials)
    assert status.elapsed_hours == (last - first).total_seconds() / 3600


def _url_of(runs: Path) -> str:
    return f"sqlite:///{(runs.parent / 'reid_hpo.db').resolve()}"


def test_demo_never_reuses_a_study_name(sqlite_url: str) -> None:
    optuna.create_study(study_name="demo-x", storage=sqlite_url)
    optuna.create_study(study_name="demo-x-2", storage=sqlite_url)
    assert free_study_name("demo-y", sqlite_url) == "demo-y"
    assert free_study_name("demo-x", sqlite_url) == "demo-x-3"
