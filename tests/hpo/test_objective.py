"""The trial objective on SQLite: value, user attrs, failure sorting, resume of a retry."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import socket
import warnings
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

from hpo.errors import SpecError
from hpo.spec import StudySpec
from hpo.storage import close_storage
from hpo.storage import open_storage
from hpo.study import MARKER_NAME
from hpo.study import ArtifactPathError
from hpo.study import attempt_dir
from hpo.study import create_study
from hpo.study import delete_study
from hpo.worker import StopNow
from hpo.worker import TrialResult
from hpo.worker import fail_reason
from hpo.worker import make_objective
from hpo.worker import run_trial
from reid_core.engine import Callback
from reid_core.engine import EpochReport
from reid_core.errors import DatasetFormatError
from reid_core.errors import DatasetNotFoundError
from reid_core.errors import NonFiniteLossError
from tests.hpo._worker_support import FakeTrainer
from tests.hpo._worker_support import WorkerDeath
from tests.hpo._worker_support import dying_trainer_factory
from tests.hpo._worker_support import fail_and_queue_retry
from tests.hpo._worker_support import fake_trainer_factory
from tests.hpo._worker_support import make_dataset
from tests.hpo._worker_support import spec_dict


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data") / "mars")


def _study(spec: StudySpec, url: str) -> optuna.Study:
    return create_study(spec, url)


def _spec(tmp_path: Path, data_root: Path, **kwargs: object) -> StudySpec:
    raw = spec_dict(name="obj", data_root=data_root, artifacts=tmp_path / "runs", **kwargs)
    return StudySpec.model_validate(raw)


def test_real_training_records_value_and_every_user_attr(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    study.optimize(make_objective(spec, study_name="obj"), n_trials=1)
    trial = study.trials[0]
    attrs = trial.user_attrs
    assert trial.state is TrialState.COMPLETE
    assert trial.value == attrs["val_metrics"]["mAP"]
    assert 0.0 <= trial.value <= 1.0
    assert set(trial.intermediate_values) == {0, 1}
    assert attrs["seed"] == spec.seed + trial.number
    study_uuid = study.user_attrs["study_uuid"]
    attempt = tmp_path / "runs" / study_uuid / "trial_0" / "run_0"  # trial 0's first run
    assert attrs["checkpoint_dir"] == str(attempt.relative_to(tmp_path / "runs"))
    assert attrs["origin_trial"] == 0
    assert json.loads((attempt / "attempt.json").read_text())["study_uuid"] == study_uuid
    # Epochs are 1-based in the attribute and the file name: the second epoch is epoch 2.
    assert attrs["last_checkpoint_epoch"] == 2
    assert Path(attrs["checkpoint"]).name == "epoch_0002.pt"
    assert (tmp_path / "runs" / attrs["checkpoint"]).is_file()
    logged = (attempt / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in logged] == [1, 2]
    assert len(attrs["cmc"]) > 0 and all(0.0 <= v <= 1.0 for v in attrs["cmc"])
    # What optuna-dashboard shows, rounded: 4 decimals of a fraction, % in words, 1 decimal.
    assert attrs["cmc"] == [round(v, 4) for v in attrs["cmc"]]
    assert attrs["val_cmc_pct"].startswith(f"rank1 {100 * attrs['cmc'][0]:.1f}%, rank5 ")
    assert attrs["val_mAP_pct"] == round(100 * trial.value, 1)
    assert attrs["code_version"]["hpo"]
    assert attrs["device"] == "cpu"
    assert attrs["epochs_trained"] == 2 and attrs["device_count"] == 1
    # TensorBoard's HParams tab: the trial's number, parameters and state, in its own run.
    hparams = _tensorboard_hparams(attempt / "tensorboard" / "trial_0")
    assert hparams["state"].string_value == "COMPLETE"
    assert hparams["trial"].number_value == 0 and "sigma" in hparams
    assert 0 < attrs["device_seconds"] <= trial.duration.total_seconds() + 0.1
    assert attrs["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert "fail_reason" not in attrs and "resumed_from_epoch" not in attrs


def _tensorboard_hparams(log_dir: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    events = EventAccumulator(str(log_dir))
    events.Reload()
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    return HParamsPluginData.FromString(content).session_start_info.hparams


def test_retry_resumes_from_the_checkpoint_of_its_predecessor(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root, epochs=3)
    study = _study(spec, sqlite_url)

    crashing = make_objective(spec, study_name="obj", trainer_factory=dying_trainer_factory(0))
    with pytest.raises(WorkerDeath):
        study.optimize(crashing, n_trials=1)
    fail_and_queue_retry(study, sqlite_url, 0)
    study.optimize(make_objective(spec, study_name="obj"), n_trials=1)

    first, retry = study.trials
    assert retry.state is TrialState.COMPLETE
    assert retry.params == first.params
    root = tmp_path / "runs"
    trial_dir = (root / first.user_attrs["checkpoint_dir"]).parent
    # Each attempt writes its own folder of the same trial; the retry took the checkpoint over
    # and freed the predecessor's copy.
    # Folders are named by the attempt's Optuna number: trial_0/run_0, then the retry's run_1.
    assert root / retry.user_attrs["checkpoint_dir"] == trial_dir / "run_1"
    assert retry.user_attrs["origin_trial"] == 0
    assert not list((trial_dir / "run_0").glob("*.pt"))
    assert (trial_dir / "run_0" / "attempt.json").is_file()
    assert retry.user_attrs["resumed_from_epoch"] == 1  # the checkpoint of epoch 1
    # Each attempt accounts for the epochs it trained itself, not the ones it took over.
    assert (first.user_attrs["epochs_trained"], retry.user_attrs["epochs_trained"]) == (1, 2)
    assert retry.user_attrs["seed"] == first.user_attrs["seed"]
    assert set(retry.intermediate_values) == {0, 1, 2}
    assert sorted(p.name for p in trial_dir.parent.iterdir()) == [MARKER_NAME, "trial_0"]


def _retry_of_first_trial(study: optuna.Study) -> None:
    """What fail_stale_trials does for a dead worker: a WAITING copy with params + attrs."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(
            study, study.trials[0]
        )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest) -> str:
    """The study storage: SQLite, and the real PostgreSQL server."""
    return request.getfixturevalue(f"{request.param}_url")


def test_a_recreated_study_never_resumes_the_deleted_ones_checkpoints(
    tmp_path: Path, data_root: Path, url: str
) -> None:
    # study run a.yaml; study delete sec; study run b.yaml (same name, another lr): before,
    # every trial "resumed" from runs/sec/trial_N and reported the deleted study's value.
    spec_a = _spec(tmp_path, data_root)
    study_a = _study(spec_a, url)
    study_a.optimize(make_objective(spec_a, study_name="obj"), n_trials=1)
    folder_a = tmp_path / "runs" / study_a.trials[0].user_attrs["checkpoint_dir"]
    uuid_a = study_a.user_attrs["study_uuid"]
    deleted = delete_study("obj", url)
    assert deleted.artifacts_removed and not folder_a.exists()

    raw = spec_dict(name="obj", data_root=data_root, artifacts=tmp_path / "runs")
    raw["training"]["lr"] = 5.0e-4
    spec_b = StudySpec.model_validate(raw)
    study_b = _study(spec_b, url)
    study_b.optimize(make_objective(spec_b, study_name="obj"), n_trials=1)
    trial = study_b.trials[0]
    assert trial.state is TrialState.COMPLETE
    assert "resumed_from_epoch" not in trial.user_attrs
    assert set(trial.intermediate_values) == {0, 1}  # trained every epoch itself
    assert study_b.user_attrs["study_uuid"] != uuid_a
    assert uuid_a not in trial.user_attrs["checkpoint_dir"]


def test_a_retry_resumes_only_a_checkpoint_of_its_own_study_and_config(
    tmp_path: Path, data_root: Path, sqlite_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    spec = _spec(tmp_path, data_root, epochs=3)
    study = _study(spec, sqlite_url)
    crash = fake_trainer_factory({0: RuntimeError("worker died")})
    study.optimize(
        make_objective(spec, study_name="obj", trainer_factory=crash),
        n_trials=1,
        catch=(RuntimeError,),
    )
    first = tmp_path / "runs" / study.trials[0].user_attrs["checkpoint_dir"]
    checkpoint = first / "last.pt"  # a verified checkpoint to resume from
    checkpoint.write_text(json.dumps({"epoch": 1}))
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    (first / "last.pt.sha256").write_text(f"{digest}  last.pt\n")
    record = json.loads((first / "attempt.json").read_text())
    record["config_hash"] = "0" * 64  # as if another study or configuration wrote it
    (first / "attempt.json").write_text(json.dumps(record))
    _retry_of_first_trial(study)
    with caplog.at_level(logging.WARNING, logger="hpo.worker._objective"):
        study.optimize(
            make_objective(spec, study_name="obj", trainer_factory=fake_trainer_factory()),
            n_trials=1,
        )
    retry = study.trials[1]
    assert retry.state is TrialState.COMPLETE
    assert "resumed_from_epoch" not in retry.user_attrs
    assert set(retry.intermediate_values) == {0, 1, 2}  # from the first epoch
    warnings_ = [r.getMessage() for r in caplog.records if "not resuming" in r.getMessage()]
    assert len(warnings_) == 1 and "starting from epoch 1" in warnings_[0]
    # The study records it too (study status and the report show it).
    assert (
        "does not record this study, trial and configuration"
        in (retry.user_attrs["resume_skipped"])
    )


def test_artifact_paths_never_come_from_the_study_name(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    escape = "../" * 5 + "escape" + "x" * 300  # a renamed study: no name is a path here
    objective = make_objective(spec, study_name=escape, trainer_factory=fake_trainer_factory())
    study.optimize(objective, n_trials=1)
    folder = (tmp_path / "runs" / study.trials[0].user_attrs["checkpoint_dir"]).resolve()
    assert folder.is_relative_to((tmp_path / "runs").resolve())
    assert folder.parts[-3] == study.user_attrs["study_uuid"]
    with pytest.raises(ArtifactPathError, match="is not 32 hex digits"):
        attempt_dir(tmp_path / "runs", "../escape", trial=0, attempt=0)


class _FailedBeforeItsFirstEpochEnds(Callback):
    """Another worker's watchdog fails the trial while this one still trains it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def on_epoch_end(self, report: EpochReport) -> None:
        if report.epoch == 0:
            other = open_storage(self.url)
            try:
                trial_id = other.get_trial_id_from_study_id_trial_number(
                    other.get_study_id_from_name("obj"), 0
                )
                other.set_trial_state_values(trial_id, TrialState.FAIL)
            finally:
                close_storage(other)


def test_a_trial_failed_elsewhere_stops_writing_at_its_next_epoch_end(
    tmp_path: Path, data_root: Path, url: str
) -> None:
    spec = _spec(tmp_path, data_root, epochs=4)
    study = _study(spec, url)
    fence = _FailedBeforeItsFirstEpochEnds(url)

    class Fenced(FakeTrainer):
        def fit(self, *, callbacks, resume_from=None):  # type: ignore[no-untyped-def]
            return super().fit(callbacks=[fence, *callbacks], resume_from=resume_from)

    objective = make_objective(spec, study_name="obj", trainer_factory=Fenced)
    assert run_trial(study, objective, deadline=None).state is TrialState.FAIL
    trial = study.trials[0]
    assert trial.state is TrialState.FAIL
    # Epoch 1 ended after the trial was failed: nothing of epochs 2-4 was ever written.
    folder = tmp_path / "runs" / trial.user_attrs["checkpoint_dir"]
    # The fenced attempt keeps its checkpoint: the retry of the other worker takes it over.
    assert json.loads((folder / "last.pt").read_text()) == {"epoch": 1}
    assert trial.intermediate_values == {}


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (NonFiniteLossError("loss is nan at epoch 0 step 3"), "nonfinite_loss"),
        (torch.OutOfMemoryError("CUDA out of memory"), "oom"),
        (DatasetFormatError("bad.jpg cannot be decoded"), "data_error"),
        (DatasetNotFoundError("no data/mars"), "data_error"),
        (SpecError("search_space.x", "bad"), "spec_error"),
        (KeyError("x"), "exception:KeyError"),
    ],
)
def test_fail_reason_is_machine_readable(exc: Exception, reason: str) -> None:
    assert fail_reason(exc) == reason


def test_nan_loss_fails_the_trial_with_its_reason(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    factory = fake_trainer_factory({0: NonFiniteLossError("loss is nan at epoch 0 step 1")})
    objective = make_objective(spec, study_name="obj", trainer_factory=factory)
    with pytest.raises(NonFiniteLossError):
        study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state is TrialState.FAIL
    assert trial.user_attrs["fail_reason"] == "nonfinite_loss"


def test_on_nan_worst_completes_a_diverged_trial_with_the_worst_value(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    raw = spec_dict(name="obj", data_root=data_root, artifacts=tmp_path / "runs")
    raw["objective"] = {"metric": "map", "direction": "minimize"}  # on_nan: worst by default
    spec = StudySpec.model_validate(raw)
    assert spec.objective.on_nan == "worst"
    worst = 1.0  # the worst mAP when minimising; 0 when maximising (the reference's score)
    assert spec.objective.model_copy(update={"direction": "maximize"}).worst_value == 0.0
    study = _study(spec, sqlite_url)
    factory = fake_trainer_factory({0: NonFiniteLossError("loss is nan at epoch 0 step 1")})
    objective = make_objective(spec, study_name="obj", trainer_factory=factory)
    result = run_trial(study, objective, deadline=None)
    assert (result.state, result.value) == (TrialState.COMPLETE, worst)
    trial = study.trials[0]
    assert trial.user_attrs["nonfinite_loss"] == "loss is nan at epoch 0 step 1"
    assert "fail_reason" not in trial.user_attrs
    # The sampler sees it: a COMPLETE trial with the worst value, not a FAIL it skips.
    assert [t.value for t in study.get_trials(states=(TrialState.COMPLETE,))] == [worst]


def test_run_trial_returns_how_the_trial_ended(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    failing = fake_trainer_factory({0: NonFiniteLossError("loss is nan at epoch 0 step 1")})
    objective = make_objective(spec, study_name="obj", trainer_factory=failing)
    assert run_trial(study, objective, deadline=None) == TrialResult(
        0, TrialState.FAIL, reason="nonfinite_loss"
    )
    objective = make_objective(spec, study_name="obj", trainer_factory=fake_trainer_factory())
    started: list[int] = []
    result = run_trial(
        study, objective, deadline=None, on_start=lambda: started.append(len(study.trials))
    )
    assert started == [2]  # called once the trial exists in the storage
    assert (result.number, result.state, result.reason) == (1, TrialState.COMPLETE, None)
    assert result.value == study.trials[1].value


def test_an_error_raised_over_a_second_stop_signal_still_hands_the_trial_back(
    tmp_path: Path, data_root: Path, sqlite_url: str
) -> None:
    # torch.save's zip writer, stopped mid-checkpoint by the second signal, raises its own
    # error over the StopNow (seen in a loaded run of the SIGINT-twice worker test, where
    # the trial then FAILed as exception:RuntimeError with no retry).
    error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4977216")
    error.__context__ = StopNow("SIGINT")
    spec = _spec(tmp_path, data_root)
    study = _study(spec, sqlite_url)
    factory = fake_trainer_factory({0: error})
    objective = make_objective(spec, study_name="obj", trainer_factory=factory)
    result = run_trial(study, objective, deadline=None)
    assert (result.state, result.reason) == (TrialState.FAIL, "interrupted")
    first, retry = study.trials
    assert first.state is TrialState.FAIL and first.user_attrs["fail_reason"] == "interrupted"
    assert retry.state is TrialState.WAITING and retry.params == first.params


def test_objective_metric_selects_the_value(tmp_path: Path, data_root: Path) -> None:
    raw = spec_dict(name="obj", data_root=data_root, artifacts=tmp_path / "runs")
    raw["objective"]["metric"] = "rerank_map"
    spec = StudySpec.model_validate(raw)
    study = optuna.create_study(direction="maximize")
    study.optimize(
        make_objective(spec, study_name="obj", trainer_factory=fake_trainer_factory()),
        n_trials=1,
    )
    trial = study.trials[0]
    assert trial.value == pytest.approx(trial.params["sigma"])
    assert math.isclose(trial.user_attrs["val_metrics"]["rerank_mAP"], trial.value)
    assert trial.user_attrs["rerank_cmc"] == trial.user_attrs["cmc"]
