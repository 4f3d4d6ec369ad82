"""Workers on SQLite: trial loop, failure sorting, flapping guard, stop reasons, SIGTERM, CLI."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from hpo.cli import app
from hpo.errors import ReidHpoError
from hpo.spec import StudySpec
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.study import create_study
from hpo.worker import WorkerError
from hpo.worker import parse_gpus
from hpo.worker import run_supervisor
from hpo.worker import run_worker
from reid_core.engine import Callback
from reid_core.engine import FitResult
from reid_core.errors import DatasetNotFoundError
from reid_core.errors import NonFiniteLossError
from tests._helpers.waits import scaled
from tests._helpers.waits import wait_until
from tests.hpo._worker_support import REPO_ROOT
from tests.hpo._worker_support import FakeTrainer
from tests.hpo._worker_support import child_env
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict
from tests.hpo._worker_support import trials_of
from tests.hpo._worker_support import write_spec


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


def _create(tmp_path: Path, data_root: Path, url: str, **kwargs: object) -> StudySpec:
    raw = spec_dict(name="w", data_root=data_root, artifacts=tmp_path / "runs", **kwargs)
    spec = StudySpec.model_validate(raw)
    create_study(spec, url)
    return spec


def _states(url: str) -> list[TrialState]:
    return [t.state for t in trials_of("w", url)]


# ---------------------------------------------------------------------------- unit pieces


def test_gpus_none_is_one_cpu_worker() -> None:
    assert parse_gpus("none") == [None]


def test_gpus_all_without_cuda_is_refused() -> None:
    # A CPU worker is asked for with --device cpu (tests/hpo/test_gpu_slots.py).
    with pytest.raises(ReidHpoError, match=r"no CUDA device is visible.*--device cpu"):
        parse_gpus("all")


@pytest.mark.parametrize("value", ["0,x", "0,0", "", "gpu0"])
def test_malformed_gpus_are_refused(value: str) -> None:
    with pytest.raises(ReidHpoError, match="--gpus"):
        parse_gpus(value)


def test_gpu_index_that_is_not_visible_is_refused() -> None:
    with pytest.raises(ReidHpoError, match="GPU 3 not visible"):
        parse_gpus("3")


# ------------------------------------------------------------------------------ the loop


def test_failed_trials_get_reasons_and_the_worker_goes_on(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=2)
    factory = fake_trainer_factory(
        {0: NonFiniteLossError("loss is nan at epoch 0 step 2"), 1: RuntimeError("boom")}
    )
    result = run_worker("w", sqlite_url, trainer_factory=factory)
    trials = trials_of("w", sqlite_url)
    assert [t.state for t in trials] == [TrialState.FAIL] * 2 + [TrialState.COMPLETE] * 2
    assert trials[0].user_attrs["fail_reason"] == "nonfinite_loss"
    assert trials[1].user_attrs["fail_reason"] == "exception:RuntimeError"
    assert (result.trials_run, result.complete, result.failed) == (4, 2, 2)
    assert result.stop_reason == "budget"
    # optuna-dashboard's study note names the best trial in % as soon as a trial completes.
    from optuna_dashboard import get_note

    study = optuna.load_study(study_name="w", storage=sqlite_url)
    note = get_note(study)
    best = f"- best trial on validation: trial {study.best_trial.number}, val mAP "
    assert f"{best}{100 * study.best_value:.1f}%" in note, note
    assert "compute: " in note


def test_flapping_trials_stop_the_worker(tmp_path: Path, data_root: Path, sqlite_url: str) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=5)
    factory = fake_trainer_factory({n: RuntimeError("no GPU driver") for n in range(5)})
    with pytest.raises(WorkerError, match="3 trials in a row failed with exception:RuntimeError"):
        run_worker("w", sqlite_url, trainer_factory=factory)
    assert _states(sqlite_url) == [TrialState.FAIL] * 3


def test_missing_dataset_stops_the_worker_after_one_failed_trial(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=3)
    factory = fake_trainer_factory({0: DatasetNotFoundError("data/mars: no bbox_train/")})
    with pytest.raises(DatasetNotFoundError):
        run_worker("w", sqlite_url, trainer_factory=factory)
    trials = trials_of("w", sqlite_url)
    assert [t.state for t in trials] == [TrialState.FAIL]
    assert trials[0].user_attrs["fail_reason"] == "data_error"


def test_max_trials_limits_this_worker_only(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=5)
    result = run_worker("w", sqlite_url, max_trials=2, trainer_factory=fake_trainer_factory())
    assert (result.trials_run, result.stop_reason) == (2, "max_trials")


def test_spent_time_budget_starts_no_trial(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=5, timeout_hours=1.0)
    storage = optuna.storages.RDBStorage(sqlite_url)
    optuna.load_study(study_name="w", storage=storage).set_user_attr(
        "started_at", time.time() - 7200
    )
    result = run_worker("w", sqlite_url, trainer_factory=fake_trainer_factory())
    assert (result.trials_run, result.stop_reason) == (0, "timeout")
    assert _states(sqlite_url) == []


def test_waiting_retry_is_run_before_any_new_trial(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=1)
    storage = optuna.storages.RDBStorage(sqlite_url)
    optuna.load_study(study_name="w", storage=storage).enqueue_trial(
        {"sigma": 0.5, "margin": 0.1}, user_attrs={"seed": 41}
    )
    run_worker("w", sqlite_url, trainer_factory=fake_trainer_factory())
    (trial,) = trials_of("w", sqlite_url)
    assert trial.params == {"sigma": 0.5, "margin": 0.1}
    assert trial.user_attrs["seed"] == 41
    assert trial.state is TrialState.COMPLETE


def test_sigterm_is_forwarded_the_trial_handed_back_and_resumed_later(
    tmp_path: Path, data_root: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=1, epochs=12)
    for key, value in child_env(sqlite_url).items():
        monkeypatch.setenv(key, value)
    # A SIGTERM arriving after the supervisor restored the handlers must not kill pytest.
    late_signals: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: late_signals.append(signum))

    def stop_after_the_first_checkpoint() -> None:
        # The stop must reach the worker before its last epoch begins. The checkpoint file is
        # seen within 20 ms (a fresh storage per poll of the trial's attrs took far longer),
        # and 12 epochs of ~0.2 s leave seconds to spare: with 5, a 2 s stall of this thread
        # after the first checkpoint let the trial complete (the worker exited 0).
        checkpoints = tmp_path / "runs"
        wait_until(
            lambda: any(checkpoints.glob("*/trial_0/run_0/epoch_*.pt")),
            120,
            "the first checkpoint of trial 0",
            step=0.02,
        )
        os.kill(os.getpid(), signal.SIGTERM)  # the supervisor forwards it to its worker

    stopper = threading.Thread(target=stop_after_the_first_checkpoint, daemon=True)
    stopper.start()
    try:
        code = run_supervisor("w", sqlite_url, "none")
        stopper.join(timeout=scaled(10))
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143  # the stopped worker exited 128 + SIGTERM, and so does the supervisor
    assert not late_signals

    first, retry = trials_of("w", sqlite_url)
    assert first.state is TrialState.FAIL
    assert first.user_attrs["fail_reason"] == "interrupted"
    assert retry.state is TrialState.WAITING
    assert retry.params == first.params
    assert retry.user_attrs["checkpoint_dir"] == first.user_attrs["checkpoint_dir"]
    assert "fail_reason" not in retry.user_attrs

    result = run_worker("w", sqlite_url)
    resumed = trials_of("w", sqlite_url)[1]
    assert resumed.state is TrialState.COMPLETE
    assert resumed.user_attrs["resumed_from_epoch"] > 0
    assert (result.complete, result.stop_reason) == (1, "budget")


_SLOW_WORKER = """
import sys
import time
from hpo.worker import run_worker
from reid_core.engine import Trainer

class SlowAfterEpoch0(Trainer):
    # The real trainer, whose epoch 1 takes 120 s: a stop that waited for the epoch would show.
    def train_one_epoch(self, epoch):
        if epoch >= 1:
            open(sys.argv[2], "w").close()  # the test signals once this epoch has begun
            time.sleep(120)
        return super().train_one_epoch(epoch)

def factory(cfg, *, rerank):
    return SlowAfterEpoch0(cfg, evaluate_rerank=rerank)

sys.exit(run_worker("w", sys.argv[1], trainer_factory=factory).exit_code)
"""


@pytest.mark.parametrize("stop_after_s", [None, "1"], ids=["second-sigterm", "stop-after-1s"])
def test_a_second_sigterm_stops_at_once_and_hands_the_trial_back_resumable(
    stop_after_s: str | None, tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    """Two SIGTERMs (SLURM at its time limit), or one with $REID_HPO_STOP_AFTER_S (Kubernetes
    sends only one): the worker stops mid-epoch, hands the trial back, exits 143."""
    _create(tmp_path, data_root, sqlite_url, n_trials=1, epochs=2)
    extra = {} if stop_after_s is None else {"REID_HPO_STOP_AFTER_S": stop_after_s}
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", _SLOW_WORKER, sqlite_url, str(tmp_path / "in-epoch-1")],
            cwd=REPO_ROOT,
            env=child_env(sqlite_url, **extra),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until((tmp_path / "in-epoch-1").exists, 120, "trial 0's epoch 1 to begin")
        process.send_signal(signal.SIGTERM)  # graceful: would wait for the 120 s epoch's end
        if stop_after_s is None:
            # Two SIGTERMs that arrive before the worker's handler runs are one to Python: the
            # second is sent once the first was handled (it logs), not after a fixed 0.5 s.
            wait_until(
                lambda: "stopping after the current epoch" in log.read_text(),
                60,
                "the worker to handle the first SIGTERM",
                step=0.05,
            )
            process.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        process.wait(timeout=scaled(60))
        seconds = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert process.returncode == 143, output
    assert seconds < 30, seconds  # not the 120 s epoch
    # Optuna logs the handed-back trial's TrialInterrupted; nothing else escapes.
    assert "KeyboardInterrupt" not in output and "StopNow" not in output
    assert "stopping at once; handing the trial back" in output
    if stop_after_s is not None:
        assert "at once in 1 s" in output
    first, retry = trials_of("w", sqlite_url)
    assert first.state is TrialState.FAIL
    assert first.user_attrs["fail_reason"] == "interrupted"
    assert retry.state is TrialState.WAITING
    assert "fail_reason" not in retry.user_attrs
    assert retry.user_attrs["last_checkpoint_epoch"] == 1
    assert retry.user_attrs["checkpoint_dir"] == first.user_attrs["checkpoint_dir"]

    if stop_after_s is not None:
        return  # the resume is the same as after two signals
    result = run_worker("w", sqlite_url)  # the real trainer, from the epoch-1 checkpoint
    resumed = trials_of("w", sqlite_url)[1]
    assert (resumed.state, resumed.user_attrs["resumed_from_epoch"]) == (TrialState.COMPLETE, 1)
    assert (result.complete, result.exit_code) == (1, 0)


# ------------------------------------------------------------------------------------ CLI


def test_worker_child_runs_trials_in_process(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=1)
    result = CliRunner().invoke(app, ["worker", "w", "--child", "--storage", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "worker done (budget): 1 trial(s), 1 complete" in result.output
    assert _states(sqlite_url) == [TrialState.COMPLETE]


def test_study_run_creates_the_study_from_a_spec_and_supervises(
    tmp_path: Path, data_root: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, str]] = []
    monkeypatch.setattr(
        "hpo.worker.run_supervisor",
        lambda name, url, gpus, **kwargs: calls.append((name, url, gpus)) or 0,
    )
    raw = spec_dict(name="w", data_root=data_root, artifacts=tmp_path / "runs")
    spec_file = write_spec(tmp_path / "w.yaml", raw)
    args = ["study", "run", str(spec_file), "--storage", sqlite_url, "--gpus", "none"]
    first = CliRunner().invoke(app, args)
    again = CliRunner().invoke(app, args)  # same spec: resumes the existing study
    assert (first.exit_code, again.exit_code) == (0, 0), first.output + again.output
    assert calls == [("w", sqlite_url, "none")] * 2


def test_worker_with_malformed_gpus_is_one_line_exit_2(sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["worker", "w", "--gpus", "0,x", "--storage", sqlite_url])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: --gpus '0,x': expected 'all', 'none' or distinct GPU indices such as '0,1'"
    ]


def test_study_run_by_unknown_name_is_one_line_exit_2(sqlite_url: str) -> None:
    result = CliRunner().invoke(app, ["study", "run", "nope", "--storage", sqlite_url])
    assert result.exit_code == 2
    assert result.output.strip().startswith("Error:")
    assert len(result.output.strip().splitlines()) == 1


class _FailedElsewhere(FakeTrainer):
    """Trial 0 is failed by "another worker" (another connection) before its first epoch ends,
    as the heartbeat watchdog of a second worker does to a worker that was paused too long."""

    storage_url = ""

    def fit(self, *, callbacks: Sequence[Callback], resume_from: Path | None) -> FitResult:
        if Path(self.cfg.output_dir).name == "run_0":
            other = open_storage(self.storage_url)
            try:
                study_id = other.get_study_id_from_name("w")
                trial_id = other.get_trial_id_from_study_id_trial_number(study_id, 0)
                other.set_trial_state_values(trial_id, TrialState.FAIL)
            finally:
                close_storage(other)
        return super().fit(callbacks=callbacks, resume_from=resume_from)


def test_a_trial_failed_by_another_worker_is_dropped_and_the_worker_goes_on(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    _create(tmp_path, data_root, sqlite_url, n_trials=2)
    _FailedElsewhere.storage_url = sqlite_url
    result = run_worker("w", sqlite_url, trainer_factory=_FailedElsewhere)
    trials = trials_of("w", sqlite_url)
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "checkpoint" not in trials[0].user_attrs  # nothing was recorded after the failure
    assert (result.trials_run, result.complete, result.failed) == (3, 2, 1)
